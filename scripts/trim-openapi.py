#!/usr/bin/env python3
"""Trims a pinned upstream OpenAPI document to the operations the adapter calls.

Keeps each selected operation byte-for-byte (as parsed data), the path-level parameters of its
path, and exactly the components those operations reference, transitively. Nothing is rewritten,
so tests can prove every kept operation and schema is identical to the upstream document.

Usage: scripts/trim-openapi.py waldur|langflow [--check]
       scripts/trim-openapi.py langflow --nswag-copy OUT

--nswag-copy writes an OpenAPI 3.0 rendering of the committed trimmed file to OUT (the build puts it
under obj/): NSwag turns 3.1's `anyOf: [X, {type: null}]` into wrapper classes, so generation reads
`X` + `nullable: true` instead. The committed file stays identical to upstream. Needs only the
standard library.
"""
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "openapi" / "upstream"  # byte-exact pinned copies (see each SOURCE.txt)

SPECS = {
    "waldur": {
        "source": "waldur/waldur-openapi-schema-8.0.5.yaml.gz",
        "target": "openapi/waldur.yaml",
        "operations": [
            # Orders
            "marketplace_orders_list",
            "marketplace_orders_retrieve",
            "marketplace_orders_approve_by_provider",
            "marketplace_orders_reject_by_provider",
            "marketplace_orders_set_state_done",
            "marketplace_orders_set_state_erred",
            # Provider resources
            "marketplace_provider_resources_list",
            "marketplace_provider_resources_retrieve",
            "marketplace_provider_resources_set_backend_id",
            "marketplace_provider_resources_set_backend_metadata",
            "marketplace_provider_resources_submit_report",
            "marketplace_provider_resources_team_list",
            # Usage
            "marketplace_component_usages_list",
            "marketplace_component_usages_set_usage",
            # Offerings and their registration from the catalogue
            "marketplace_provider_offerings_retrieve",
            "marketplace_provider_offerings_list",
            "marketplace_provider_offerings_create",
            "marketplace_provider_offerings_activate",
            "marketplace_provider_offerings_update_description",
            "marketplace_provider_offerings_update_overview",
            "marketplace_provider_offerings_update_options",
            "marketplace_provider_offerings_update_resource_options",
            "marketplace_provider_offerings_update_integration",
            "marketplace_provider_offerings_create_offering_component",
            "marketplace_provider_offerings_update_offering_component",
            "marketplace_categories_list",
            "marketplace_categories_create",
            "marketplace_plans_list",
            "marketplace_plans_create",
            "marketplace_plans_update_prices",
            "marketplace_service_providers_list",
            # Organization credits (money), for the Waldur-funded balance mode
            "customer_credits_list",
            # Organization names, for organizations first recorded without one
            "customers_retrieve",
            # Site-agent identity and events
            "marketplace_site_agent_identities_list",
            "marketplace_site_agent_identities_create",
            "marketplace_site_agent_identities_register_event_subscription",
            "event_subscriptions_create_queue",
            # Health
            "users_me_retrieve",
        ],
    },
    "langflow": {
        "source": "langflow/openapi.json",
        "target": "openapi/langflow.json",
        "operations": [
            # Superuser and tenant login (form-encoded)
            "login_to_get_access_token_api_v1_login_post",
            # Tenant users (one per Waldur project), managed by the superuser
            "add_user_api_v1_users__post",
            "read_all_users_api_v1_users__get",
            "patch_user_api_v1_users__user_id__patch",
            "delete_user_api_v1_users__user_id__delete",
            # The tenant's own API key (created by the tenant, for the tenant only)
            "get_api_keys_route_api_v1_api_key__get",
            "create_api_key_route_api_v1_api_key__post",
            "delete_api_key_route_api_v1_api_key__api_key_id__delete",
            # One Langflow project per subscription
            "read_projects_api_v1_projects__get",
            "create_project_api_v1_projects__post",
            "delete_project_api_v1_projects__project_id__delete",
            # One flow per subscription, cloned from the offering's template
            "read_flows_api_v1_flows__get",
            "create_flow_api_v1_flows__post",
            "read_flow_api_v1_flows__flow_id__get",
            "update_flow_api_v1_flows__flow_id__patch",
            "delete_flow_api_v1_flows__flow_id__delete",
            # Running a flow (the chat path)
            "simplified_run_flow_api_v1_run__flow_id_or_name__post",
            # Readiness
            "health_check_health_check_get",
        ],
    },
}


def load(path: Path):
    if path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    if path.name.endswith(".json"):
        return json.loads(text)
    import yaml  # only YAML specs need PyYAML; the build's --nswag-copy path does not

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def refs(node, found: set):
    """Collects every local $ref below node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def trim(spec: dict, operation_ids: list) -> dict:
    wanted = set(operation_ids)
    paths = {}
    for path, item in spec["paths"].items():
        kept = {}
        for key, value in item.items():
            if isinstance(value, dict) and value.get("operationId") in wanted:
                kept[key] = value
                wanted.discard(value["operationId"])
        if kept:
            if "parameters" in item:
                kept = {"parameters": item["parameters"], **kept}
            paths[path] = kept
    if wanted:
        sys.exit(f"operations not in the upstream spec: {sorted(wanted)}")

    components = spec.get("components", {})
    pending, seen = set(), set()
    refs(paths, pending)
    security_schemes = set()
    for item in paths.values():
        for op in item.values():
            if isinstance(op, dict):
                for requirement in op.get("security", []):
                    security_schemes.update(requirement.keys())
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, section, name = ref.split("/", 3)
        refs(components[section][name], pending)

    kept_components = {}
    for section in components:
        names = [r.split("/", 3)[3] for r in seen if r.split("/")[2] == section]
        if section == "securitySchemes":
            names = sorted(set(names) | (security_schemes & set(components[section])))
        if names:
            kept_components[section] = {n: components[section][n] for n in sorted(names)}

    out = {k: v for k, v in spec.items() if k not in ("paths", "components", "tags", "x-tagGroups")}
    out["paths"] = paths
    out["components"] = kept_components
    return out


def render(data: dict, target: Path) -> str:
    if target.suffix == ".json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    import yaml

    header = f"# Trimmed from the pinned upstream spec by scripts/trim-openapi.py; do not edit by hand.\n"
    return header + yaml.dump(data, sort_keys=False, allow_unicode=True, width=1_000_000,
                              Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def to_openapi30(node):
    """Rewrites the 3.1 constructs FastAPI emits into their 3.0 equivalents (for code generation only)."""
    if isinstance(node, list):
        return [to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_openapi30(value) for key, value in node.items()}
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        others = [s for s in any_of if s != {"type": "null"}]
        nullable = len(others) < len(any_of)
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(others) == 1 and "$ref" in others[0]:
            # 3.0 ignores siblings of $ref, so the reference moves into allOf.
            node = {**rest, "allOf": [others[0]]}
        elif len(others) == 1:
            node = {**others[0], **rest}
        elif others and all(s.get("type") == "string" for s in others):
            node = {**rest, "type": "string"}
        else:
            node = rest  # a union the generator cannot express: any value
        if nullable:
            node["nullable"] = True
    node.pop("examples", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def nswag_copy(config, out: Path):
    spec = load(ROOT / config["target"])
    spec = to_openapi30(spec)
    spec["openapi"] = "3.0.3"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SPECS:
        sys.exit(__doc__)
    config = SPECS[sys.argv[1]]
    if "--nswag-copy" in sys.argv:
        nswag_copy(config, Path(sys.argv[sys.argv.index("--nswag-copy") + 1]))
        return
    spec = load(UPSTREAM / config["source"])
    trimmed = trim(spec, config["operations"])
    target = ROOT / config["target"]
    text = render(trimmed, target)
    if "--check" in sys.argv:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            sys.exit(f"{target} is stale: run scripts/trim-openapi.py {sys.argv[1]}")
        return
    target.write_text(text, encoding="utf-8")
    ops = sum(1 for item in trimmed["paths"].values() for v in item.values() if isinstance(v, dict) and "operationId" in v)
    schemas = len(trimmed["components"].get("schemas", {}))
    print(f"{target.relative_to(ROOT)}: {ops} operations, {schemas} schemas")


if __name__ == "__main__":
    main()
