using System.Globalization;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Emulators;

/// <summary>
/// A stateful Waldur for the sandbox, tests and benchmarks: orders move through Waldur's states exactly as the provider actions
/// allow (approve only from pending-provider, done only from executing), resources keep what the
/// adapter sets on them, and usages are upserted per resource, component and month.
/// </summary>
public class WaldurEmulator : Emulator
{
    public const string Token = "waldur-test-token-0123456789abcdef";

    private readonly Dictionary<Guid, JsonObject> _orders = [];
    private readonly Dictionary<Guid, JsonObject> _resources = [];
    private readonly Dictionary<Guid, JsonObject> _offerings = [];
    private readonly Dictionary<Guid, JsonObject> _identities = [];
    private readonly Dictionary<(Guid Identity, string Type), JsonObject> _subscriptions = [];
    private readonly List<JsonObject> _usages = [];
    // Finds a usage by resource, component and month without scanning every usage (10,000-resource benchmarks).
    private readonly Dictionary<(string Resource, string Type, string Period), JsonObject> _usageIndex = [];
    // Offerings of resources created outside orders (subscriptions seeded straight into the database).
    private readonly Dictionary<Guid, Guid> _resourceOfferings = [];
    private readonly Dictionary<Guid, JsonObject> _categories = [];
    private readonly Dictionary<Guid, JsonObject> _plans = [];
    private readonly Dictionary<Guid, JsonObject> _customerCredits = [];
    private readonly Dictionary<Guid, string> _customerNames = [];
    // Orders staff stop just before the provider's set_state_done reaches Waldur (StopOrderBeforeDone).
    private readonly Dictionary<Guid, string> _stopBeforeDone = [];
    private DateTimeOffset _clock = DateTimeOffset.UtcNow;

    public WaldurEmulator()
    {
        UserUuid = Guid.NewGuid();
        RegisterRoutes();
    }

    public Guid UserUuid { get; }

    /// <summary>The service-provider organization that registers offerings.</summary>
    public Guid ProviderCustomerUuid { get; } = Guid.NewGuid();

    /// <summary>Offerings created through the API (registration), with their plans.</summary>
    public IReadOnlyList<JsonObject> RegisteredOfferings
    {
        get
        {
            lock (Sync)
            {
                return _offerings.Values.Where(o => o.ContainsKey("backend_id")).Select(o => WithPlans((JsonObject)o.DeepClone())).ToList();
            }
        }
    }

    public IReadOnlyList<JsonObject> Categories
    {
        get
        {
            lock (Sync)
            {
                return _categories.Values.Select(c => (JsonObject)c.DeepClone()).ToList();
            }
        }
    }

    /// <summary>Called when the adapter asks Waldur for a queue (the e2e tests create it in RabbitMQ).</summary>
    public Action<string, string>? OnQueueCreated { get; set; }

    /// <summary>
    /// Forgets every event subscription, as when a Waldur operator deletes the agent's subscriptions (their queues and
    /// logins go with them in the broker): registering again makes new ones.
    /// </summary>
    public void DropEventSubscriptions()
    {
        lock (Sync)
        {
            _subscriptions.Clear();
        }
    }

    /// <summary>Requests without the right token are refused, as Waldur does.</summary>
    public bool RequireToken { get; set; } = true;

    /// <summary>
    /// Waldur's <c>TIME_ZONE</c>: <c>set_usage</c> files a usage under the month its date falls in there, so a date at
    /// midnight UTC is the previous month's in a Waldur west of UTC.
    /// </summary>
    public TimeZoneInfo TimeZone { get; set; } = TimeZoneInfo.Utc;

    /// <summary>Waldur's clock: <c>set_usage</c> refuses a date after it, and dates a usage sent without one by it.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>
    /// Whether the token belongs to a staff user. By default it is a service provider's, like the adapter's: recent Waldur
    /// then refuses <c>set_usage</c> dated in a billing period before the current one for a usage-based component.
    /// </summary>
    public bool TokenIsStaff { get; set; }

    /// <summary>Recent Waldur's answer to a service provider backfilling a usage-based component into a past billing period.</summary>
    public const string PastPeriodRefusal = "Service providers can only specify date for limit-based or prepaid billing components when backfilling past billing periods.";

    public Guid AddOffering(string name, JsonObject? options = null, JsonObject? resourceOptions = null, Guid? uuid = null)
    {
        var id = uuid ?? Guid.NewGuid();
        lock (Sync)
        {
            _offerings[id] = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["name"] = name,
                ["type"] = "Marketplace.Slurm",
                ["state"] = "Active",
                ["options"] = options ?? new JsonObject { ["order"] = new JsonArray(), ["options"] = new JsonObject() },
                ["resource_options"] = resourceOptions ?? new JsonObject { ["order"] = new JsonArray(), ["options"] = new JsonObject() },
            };
        }

        return id;
    }

    /// <summary>Adds a category as a Waldur operator would, after the ones already there.</summary>
    public Guid AddCategory(string title)
    {
        var id = Guid.NewGuid();
        lock (Sync)
        {
            _categories[id] = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/marketplace-categories/{id}/",
                ["title"] = title,
                ["description"] = string.Empty,
            };
        }

        return id;
    }

    /// <summary>
    /// Gives the offering <paramref name="count"/> retired plans (an operator's old ones) listed before its current plans,
    /// so those are on a later page of its plans.
    /// </summary>
    public void AddRetiredPlansBefore(Guid offering, int count)
    {
        lock (Sync)
        {
            var offeringUuid = offering.ToString();
            var current = _plans.Where(p => p.Value["offering_uuid"]!.GetValue<string>() == offeringUuid).ToList();
            var others = _plans.Where(p => p.Value["offering_uuid"]!.GetValue<string>() != offeringUuid).ToList();
            var template = current[0].Value;
            // Rebuilt so the listing (in insertion order) has the retired plans first.
            _plans.Clear();
            foreach (var (id, plan) in others)
            {
                _plans[id] = plan;
            }

            for (var i = 1; i <= count; i++)
            {
                var id = Guid.NewGuid();
                var retired = (JsonObject)template.DeepClone();
                retired["uuid"] = id.ToString();
                retired["url"] = $"{Url}api/marketplace-plans/{id}/";
                retired["name"] = string.Create(CultureInfo.InvariantCulture, $"Retired plan {i}");
                retired["is_active"] = false;
                _plans[id] = retired;
            }

            foreach (var (id, plan) in current)
            {
                _plans[id] = plan;
            }
        }
    }

    /// <summary>Places a Create order (and its resource, as Waldur does) in pending-provider.</summary>
    public Guid PlaceCreateOrder(Guid offering, JsonObject? attributes = null, Guid? customer = null, Guid? project = null, string state = "pending-provider")
    {
        var resource = Guid.NewGuid();
        AddResource(resource, offering, customer ?? Guid.NewGuid(), project ?? Guid.NewGuid(), "Creating", attributes);
        return PlaceOrder("Create", offering, resource, attributes, state);
    }

    /// <summary>A resource of the offering in <paramref name="state"/>, as if ordered earlier (Waldur's own record of it).</summary>
    public void AddResource(Guid resource, Guid offering, Guid customer, Guid project, string state = "OK", JsonObject? attributes = null)
    {
        lock (Sync)
        {
            _resources[resource] = new JsonObject
            {
                ["uuid"] = resource.ToString(),
                ["name"] = "agent-" + resource.ToString("N")[..6],
                ["offering_uuid"] = offering.ToString(),
                ["project_uuid"] = project.ToString(),
                ["project_name"] = "Buyer project",
                ["customer_uuid"] = customer.ToString(),
                ["customer_name"] = "Buyer organization",
                ["state"] = state,
                ["backend_id"] = "",
                ["paused"] = false,
                ["downscaled"] = false,
                ["attributes"] = attributes?.DeepClone() ?? new JsonObject(),
            };
        }
    }

    /// <summary>Places an Update or Terminate order for an existing resource.</summary>
    public Guid PlaceOrder(string type, Guid offering, Guid resource, JsonObject? attributes = null, string state = "pending-provider")
    {
        var id = Guid.NewGuid();
        lock (Sync)
        {
            var owner = _resources[resource];
            _orders[id] = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["type"] = type,
                ["state"] = state,
                ["offering_uuid"] = offering.ToString(),
                ["offering_name"] = _offerings.TryGetValue(offering, out var o) ? o["name"]?.DeepClone() : "offering",
                ["marketplace_resource_uuid"] = resource.ToString(),
                ["resource_uuid"] = resource.ToString(),
                ["resource_name"] = owner["name"]!.DeepClone(),
                ["attributes"] = attributes?.DeepClone() ?? new JsonObject(),
                ["customer_uuid"] = owner["customer_uuid"]!.DeepClone(),
                ["customer_name"] = owner["customer_name"]!.DeepClone(),
                ["project_uuid"] = owner["project_uuid"]!.DeepClone(),
                ["project_name"] = owner["project_name"]!.DeepClone(),
                ["created"] = Now(),
                ["modified"] = Now(),
                ["error_message"] = "",
            };
        }

        return id;
    }

    public string OrderState(Guid order)
    {
        lock (Sync)
        {
            return _orders[order]["state"]!.GetValue<string>();
        }
    }

    public JsonObject Order(Guid order)
    {
        lock (Sync)
        {
            return (JsonObject)_orders[order].DeepClone();
        }
    }

    public JsonObject Resource(Guid resource)
    {
        lock (Sync)
        {
            return (JsonObject)_resources[resource].DeepClone();
        }
    }

    public Guid ResourceOf(Guid order) => Guid.Parse(Order(order)["marketplace_resource_uuid"]!.GetValue<string>());

    /// <summary>Renames a project, as its owner may (Waldur allows up to 500 characters); its resources and orders show the new name.</summary>
    public void RenameProject(Guid project, string name)
    {
        lock (Sync)
        {
            foreach (var item in _resources.Values.Concat(_orders.Values).Where(r => r["project_uuid"]!.GetValue<string>() == project.ToString()))
            {
                item["project_name"] = name;
            }
        }
    }

    /// <summary>Moves a project to another organization, as Waldur staff may; its resources and orders go with it.</summary>
    public void MoveProject(Guid project, Guid customer, string customerName)
    {
        lock (Sync)
        {
            foreach (var item in _resources.Values.Concat(_orders.Values).Where(r => r["project_uuid"]!.GetValue<string>() == project.ToString()))
            {
                item["customer_uuid"] = customer.ToString();
                item["customer_name"] = customerName;
            }
        }
    }

    public void SetResourceFlags(Guid resource, bool paused, bool downscaled)
    {
        lock (Sync)
        {
            _resources[resource]["paused"] = paused;
            _resources[resource]["downscaled"] = downscaled;
        }
    }

    /// <summary>Moves an order to <paramref name="state"/> behind the provider's back, as Waldur staff may (cancel, err, reject).</summary>
    public void SetOrderState(Guid order, string state)
    {
        lock (Sync)
        {
            _orders[order]["state"] = state;
            _orders[order]["modified"] = Now();
        }
    }

    /// <summary>
    /// Moves an order to <paramref name="state"/> (cancel, reject, err) the moment the provider's next <c>set_state_done</c> of it
    /// arrives, just before Waldur looks at it: staff acted between the provider's last read of the order and that call, which
    /// Waldur then refuses as it refuses any transition from a state the order has left (409).
    /// </summary>
    public void StopOrderBeforeDone(Guid order, string state)
    {
        lock (Sync)
        {
            _stopBeforeDone[order] = state;
        }
    }

    /// <summary>Sets a resource's state directly, as Waldur staff may (e.g. "Terminated" without a Terminate order).</summary>
    public void SetResourceState(Guid resource, string state)
    {
        lock (Sync)
        {
            _resources[resource]["state"] = state;
        }
    }

    /// <summary>Deletes a resource outright, as staff may: it answers 404 from then on.</summary>
    public void EraseResource(Guid resource)
    {
        lock (Sync)
        {
            _resources.Remove(resource);
        }
    }

    /// <summary>Hides an offering and its resources from the adapter, as Waldur does when the adapter's account loses its role.</summary>
    public void HideOffering(Guid offering)
    {
        lock (Sync)
        {
            _offerings.Remove(offering);
            foreach (var resource in _resources.Where(r => r.Value["offering_uuid"]!.GetValue<string>() == offering.ToString()).Select(r => r.Key).ToList())
            {
                _resources.Remove(resource);
            }
        }
    }

    /// <summary>Makes an order look old, as if it had sat unmodified for <paramref name="age"/>.</summary>
    public void Age(Guid order, TimeSpan age)
    {
        lock (Sync)
        {
            _orders[order]["modified"] = (DateTimeOffset.UtcNow - age).ToString("O", CultureInfo.InvariantCulture);
        }
    }

    public IReadOnlyList<JsonObject> Usages
    {
        get
        {
            lock (Sync)
            {
                return _usages.Select(u => (JsonObject)u.DeepClone()).ToList();
            }
        }
    }

    /// <summary>An organization as Waldur holds it, with its name; organizations of resources and credits are known too.</summary>
    public void AddCustomer(Guid customer, string name)
    {
        lock (Sync)
        {
            _customerNames[customer] = name;
        }
    }

    /// <summary>Adds an organization credit (money), as Waldur staff would; <paramref name="offerings"/> limits it to those offerings.</summary>
    public Guid AddCustomerCredit(Guid customer, decimal value, IEnumerable<Guid>? offerings = null, DateOnly? endDate = null)
    {
        var id = Guid.NewGuid();
        lock (Sync)
        {
            _customerCredits[id] = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/customer-credits/{id}/",
                ["value"] = value.ToString("0.00###", CultureInfo.InvariantCulture),
                ["customer"] = $"{Url}api/customers/{customer}/",
                ["customer_name"] = "Buyer organization",
                ["customer_uuid"] = customer.ToString(),
                ["customer_slug"] = "buyer",
                ["offerings"] = CreditOfferings(offerings ?? []),
                ["end_date"] = endDate?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                ["expected_consumption"] = "0.00",
                ["minimal_consumption"] = 0.0,
                ["minimal_consumption_logic"] = "fixed",
                ["grace_coefficient"] = "0",
                ["apply_as_minimal_consumption"] = false,
                ["allocated_to_projects"] = 0.0,
                ["consumption_last_month"] = 0.0,
            };
        }

        return id;
    }

    /// <summary>Limits a credit to <paramref name="offerings"/> (none: every offering), as Waldur staff would.</summary>
    public void SetCustomerCreditOfferings(Guid credit, IEnumerable<Guid> offerings)
    {
        lock (Sync)
        {
            _customerCredits[credit]["offerings"] = CreditOfferings(offerings);
        }
    }

    /// <summary>A credit's <c>offerings</c>: NestedProviderOffering objects.</summary>
    private JsonArray CreditOfferings(IEnumerable<Guid> offerings) =>
        new(offerings.Select(o => (JsonNode)new JsonObject
        {
            ["uuid"] = o.ToString(),
            ["url"] = $"{Url}api/marketplace-provider-offerings/{o}/",
            ["type"] = "Marketplace.Slurm",
            ["name"] = "offering",
        }).ToArray());

    /// <summary>Changes a credit's remaining money (Waldur reduces it when it finalizes an invoice).</summary>
    public void SetCustomerCreditValue(Guid credit, decimal value)
    {
        lock (Sync)
        {
            _customerCredits[credit]["value"] = value.ToString("0.00###", CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Records a usage as if another reporter (or an earlier run) had set it.</summary>
    public void SeedUsage(Guid resource, string type, DateOnly billingPeriod, string usage)
    {
        lock (Sync)
        {
            var usageRecord = new JsonObject
            {
                ["uuid"] = Guid.NewGuid().ToString(),
                ["resource_uuid"] = resource.ToString(),
                ["type"] = type,
                ["billing_period"] = billingPeriod.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                ["usage"] = usage,
            };
            _usages.Add(usageRecord);
            _usageIndex.TryAdd((resource.ToString(), type, usageRecord["billing_period"]!.GetValue<string>()), usageRecord);
        }
    }

    /// <summary>Changes a stored usage, or deletes it when <paramref name="usage"/> is null, as a Waldur operator could.</summary>
    public void ReplaceStoredUsage(Guid resource, string type, DateOnly billingPeriod, string? usage)
    {
        lock (Sync)
        {
            var key = (resource.ToString(), type, billingPeriod.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
            var stored = _usageIndex[key];
            if (usage is null)
            {
                _usages.Remove(stored);
                _usageIndex.Remove(key);
            }
            else
            {
                stored["usage"] = usage;
            }
        }
    }

    /// <summary>Tells the emulator which offering a resource belongs to when it was not created through an order here.</summary>
    public void KnowResource(Guid resource, Guid offering)
    {
        lock (Sync)
        {
            _resourceOfferings[resource] = offering;
        }
    }

    private string? OfferingOf(string resource)
    {
        var id = Guid.Parse(resource);
        return _resources.TryGetValue(id, out var known) ? known["offering_uuid"]?.GetValue<string>()
            : _resourceOfferings.TryGetValue(id, out var offering) ? offering.ToString() : null;
    }

    /// <summary>
    /// Whether the resource's offering bills <paramref name="type"/> on reported usage: any component but a limit-based or
    /// prepaid one, including one the offering does not declare (offerings added by tests declare none; the adapter's
    /// credit components are all usage-based).
    /// </summary>
    private bool IsUsageBased(string resource, string type)
    {
        var component = OfferingOf(resource) is { } offering && _offerings.TryGetValue(Guid.Parse(offering), out var found)
            ? found["components"]?.AsArray().FirstOrDefault(c => c?["type"]?.GetValue<string>() == type)
            : null;
        return component is null
            || (component["billing_type"]?.GetValue<string>() is not "limit" && component["is_prepaid"]?.GetValue<bool>() is not true);
    }

    private string Now()
    {
        _clock = _clock.AddMilliseconds(1);
        return _clock.ToString("O", CultureInfo.InvariantCulture);
    }

    protected override EmulatorResponse NotFound(EmulatorMessage request) => EmulatorResponse.Error(404, "Not found.");

    private void RegisterRoutes()
    {
        Route("GET", "/api/users/me/", request => Authorized(request, () => EmulatorResponse.Json(new JsonObject { ["uuid"] = UserUuid.ToString() })));

        Route("GET", "/api/marketplace-orders/", request => Authorized(request, () =>
        {
            var offering = request.Query("offering_uuid");
            var states = request.QueryAll("state");
            var matching = _orders.Values
                .Where(o => offering is null || o["offering_uuid"]!.GetValue<string>() == offering)
                .Where(o => states.Count == 0 || states.Contains(o["state"]!.GetValue<string>()))
                .OrderBy(o => o["created"]!.GetValue<string>(), StringComparer.Ordinal)
                .ToList();
            return Page(request, matching);
        }));

        Route("GET", "/api/marketplace-orders/{uuid}/", request => Authorized(request, () =>
            _orders.TryGetValue(request.Id(), out var order) ? EmulatorResponse.Json(order) : EmulatorResponse.Error(404, "Not found.")));

        Route("POST", "/api/marketplace-orders/{uuid}/approve_by_provider/", request => Transition(request, "pending-provider", "executing"));
        Route("POST", "/api/marketplace-orders/{uuid}/reject_by_provider/", request => Transition(request, "pending-provider", "rejected",
            order => order["provider_rejection_comment"] = request.JsonObject["provider_rejection_comment"]?.DeepClone()));
        Route("POST", "/api/marketplace-orders/{uuid}/set_state_done/", request => Transition(request, "executing", "done", order =>
        {
            var resource = _resources[Guid.Parse(order["marketplace_resource_uuid"]!.GetValue<string>())];
            resource["state"] = order["type"]!.GetValue<string>() == "Terminate" ? "Terminated" : "OK";
        }));
        Route("POST", "/api/marketplace-orders/{uuid}/set_state_erred/", request => Transition(request, null, "erred",
            order => order["error_message"] = request.JsonObject["error_message"]?.DeepClone()));
        // Staff (or the provider) moving an order on by hand, an erred one back included: Waldur's view takes it from
        // pending-consumer, pending-provider or erred, for Marketplace.Slurm offerings only (405 for others), saves the
        // state alone (an erred order keeps its error_message) and answers 200 with no body.
        Route("POST", "/api/marketplace-orders/{uuid}/set_state_executing/", request => SetStateExecuting(request));

        Route("GET", "/api/marketplace-provider-resources/", request => Authorized(request, () =>
        {
            var offering = request.Query("offering_uuid");
            var states = request.QueryAll("state");
            var matching = _resources.Values
                .Where(r => offering is null || r["offering_uuid"]!.GetValue<string>() == offering)
                .Where(r => states.Count == 0 || states.Contains(r["state"]!.GetValue<string>()))
                .ToList();
            return Page(request, matching);
        }));
        Route("GET", "/api/marketplace-provider-resources/{uuid}/", request => Authorized(request, () =>
            _resources.TryGetValue(request.Id(), out var resource) ? EmulatorResponse.Json(resource) : EmulatorResponse.Error(404, "Not found.")));
        Route("POST", "/api/marketplace-provider-resources/{uuid}/set_backend_id/", request => OnResource(request, r => r["backend_id"] = request.JsonObject["backend_id"]?.DeepClone()));
        Route("POST", "/api/marketplace-provider-resources/{uuid}/set_backend_metadata/", request => OnResource(request, r => r["backend_metadata"] = request.JsonObject["backend_metadata"]?.DeepClone()));
        Route("POST", "/api/marketplace-provider-resources/{uuid}/submit_report/", request => OnResource(request, r => r["report"] = request.JsonObject["report"]?.DeepClone()));
        Route("GET", "/api/marketplace-provider-resources/{uuid}/team/", request => Authorized(request, () => EmulatorResponse.Json(new JsonArray())));

        Route("GET", "/api/marketplace-component-usages/", request => Authorized(request, () =>
        {
            var resource = request.Query("resource_uuid");
            var period = request.Query("billing_period");
            var offering = request.Query("offering_uuid");
            var matching = _usages
                .Where(u => resource is null || u["resource_uuid"]!.GetValue<string>() == resource)
                .Where(u => period is null || u["billing_period"]!.GetValue<string>() == period)
                .Where(u => offering is null || OfferingOf(u["resource_uuid"]!.GetValue<string>()) == offering)
                .ToList();
            return Page(request, matching);
        }));
        Route("POST", "/api/marketplace-component-usages/set_usage/", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            var resource = body["resource"]!.GetValue<string>();
            var now = Time.GetUtcNow();
            var date = body["date"] is { } given ? DateTimeOffset.Parse(given.GetValue<string>(), CultureInfo.InvariantCulture) : now;
            if (date > now)
            {
                return EmulatorResponse.Json(new JsonObject { ["date"] = new JsonArray("Cannot submit usage for future dates.") }, 400);
            }

            // Django reads the date in TIME_ZONE and takes the month it falls in there.
            var local = TimeZoneInfo.ConvertTime(date, TimeZone);
            var month = new DateOnly(local.Year, local.Month, 1);
            var today = TimeZoneInfo.ConvertTime(now, TimeZone);
            if (!TokenIsStaff && month < new DateOnly(today.Year, today.Month, 1)
                && body["usages"]!.AsArray().Any(item => IsUsageBased(resource, item!["type"]!.GetValue<string>())))
            {
                return EmulatorResponse.Json(new JsonObject { ["date"] = new JsonArray(PastPeriodRefusal) }, 400);
            }

            var period = month.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            foreach (var item in body["usages"]!.AsArray())
            {
                var type = item!["type"]!.GetValue<string>();
                if (!_usageIndex.TryGetValue((resource, type, period), out var existing))
                {
                    existing = new JsonObject { ["uuid"] = Guid.NewGuid().ToString(), ["resource_uuid"] = resource, ["type"] = type, ["billing_period"] = period };
                    _usages.Add(existing);
                    _usageIndex[(resource, type, period)] = existing;
                }

                existing["usage"] = item["amount"]!.GetValue<string>();
                existing["date"] = date.ToString("O", CultureInfo.InvariantCulture);
            }

            return EmulatorResponse.Empty(201);
        }));

        Route("GET", "/api/customers/{uuid}/", request => Authorized(request, () =>
        {
            var id = request.Id().ToString();
            var name = _customerNames.TryGetValue(request.Id(), out var added)
                ? added
                : _resources.Values.Concat(_customerCredits.Values).FirstOrDefault(r => r["customer_uuid"]?.GetValue<string>() == id)?["customer_name"]?.GetValue<string>();
            if (name is null)
            {
                return EmulatorResponse.Error(404, "No Customer matches the given query.");
            }

            var customer = new JsonObject { ["url"] = $"{Url}api/customers/{id}/", ["uuid"] = id, ["name"] = name };
            // As Waldur does, ?field= keeps only the fields asked for.
            var fields = request.QueryAll("field");
            return EmulatorResponse.Json(fields.Count == 0 ? customer : new JsonObject(customer.Where(f => fields.Contains(f.Key)).Select(f => KeyValuePair.Create(f.Key, f.Value?.DeepClone()))));
        }));

        Route("GET", "/api/customer-credits/", request => Authorized(request, () =>
        {
            var customer = request.Query("customer_uuid");
            var matching = _customerCredits.Values
                .Where(c => customer is null || c["customer_uuid"]!.GetValue<string>() == customer)
                .ToList();
            return Page(request, matching);
        }));

        Route("GET", "/api/marketplace-provider-offerings/{uuid}/", request => Authorized(request, () =>
            _offerings.TryGetValue(request.Id(), out var offering) ? EmulatorResponse.Json(offering) : EmulatorResponse.Error(404, "Not found.")));

        RegisterCatalogueRoutes();

        Route("GET", "/api/marketplace-site-agent-identities/", request => Authorized(request, () =>
        {
            var name = request.Query("name");
            return EmulatorResponse.Json(new JsonArray(_identities.Values.Where(i => name is null || i["name"]!.GetValue<string>() == name).Select(i => (JsonNode)i.DeepClone()).ToArray()));
        }));
        Route("POST", "/api/marketplace-site-agent-identities/", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            if (!Guid.TryParse(body["offering"]?.GetValue<string>(), out var offering) || !_offerings.ContainsKey(offering))
            {
                // As Waldur's serializer answers a related field naming no object.
                return EmulatorResponse.Json(new JsonObject { ["offering"] = new JsonArray($"Invalid pk \"{body["offering"]}\" - object does not exist.") }, 400);
            }

            var id = Guid.NewGuid();
            var identity = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/marketplace-site-agent-identities/{id}/",
                ["offering"] = body["offering"]!.DeepClone(),
                ["name"] = body["name"]!.DeepClone(),
                ["version"] = body["version"]?.DeepClone(),
                ["created"] = Now(),
                ["modified"] = Now(),
                ["services"] = new JsonArray(),
            };
            _identities[id] = identity;
            return EmulatorResponse.Json(identity, 201);
        }));
        Route("POST", "/api/marketplace-site-agent-identities/{uuid}/register_event_subscription/", request => Authorized(request, () =>
        {
            var identity = request.Id();
            var type = request.JsonObject["observable_object_type"]!.GetValue<string>();
            var created = false;
            if (!_subscriptions.TryGetValue((identity, type), out var subscription))
            {
                var id = Guid.NewGuid();
                subscription = new JsonObject
                {
                    ["uuid"] = id.ToString(),
                    ["url"] = $"{Url}api/event-subscriptions/{id}/",
                    ["user"] = $"{Url}api/users/{UserUuid}/",
                    ["user_uuid"] = UserUuid.ToString(),
                    ["user_username"] = "provider",
                    ["user_full_name"] = "Provider",
                    ["observable_objects"] = new JsonArray(new JsonObject { ["object_type"] = type }),
                    ["created"] = Now(),
                    ["modified"] = Now(),
                    ["source_ip"] = null,
                };
                _subscriptions[(identity, type)] = subscription;
                created = true;
            }

            return EmulatorResponse.Json(subscription, created ? 201 : 200);
        }));
        Route("POST", "/api/event-subscriptions/{uuid}/create_queue/", request => Authorized(request, () =>
        {
            var subscription = request.Id();
            var body = request.JsonObject;
            var offering = Guid.Parse(body["offering_uuid"]!.GetValue<string>());
            var type = body["object_type"]!.GetValue<string>();
            var queueName = $"subscription_{subscription:N}_offering_{offering:N}_{type}";
            var vhost = UserUuid.ToString("N");
            OnQueueCreated?.Invoke(vhost, queueName);
            return EmulatorResponse.Json(new JsonObject
            {
                ["uuid"] = Guid.NewGuid().ToString(),
                ["url"] = $"{Url}api/event-subscription-queues/{queueName}/",
                ["event_subscription"] = $"{Url}api/event-subscriptions/{subscription}/",
                ["event_subscription_uuid"] = subscription.ToString("N"),
                ["offering_uuid"] = offering.ToString("N"),
                ["object_type"] = type,
                ["queue_name"] = queueName,
                ["vhost"] = vhost,
                ["created"] = Now(),
            }, 201);
        }));
    }

    private void RegisterCatalogueRoutes()
    {
        Route("GET", "/api/marketplace-service-providers/", request => Authorized(request, () =>
            EmulatorResponse.Json(request.Query("customer_uuid") == ProviderCustomerUuid.ToString()
                ? new JsonArray(new JsonObject { ["uuid"] = Guid.NewGuid().ToString(), ["customer_uuid"] = ProviderCustomerUuid.ToString() })
                : new JsonArray())));

        // Waldur 8.0.5 filters categories by a title they contain, case-insensitively (not an exact match), in pages.
        Route("GET", "/api/marketplace-categories/", request => Authorized(request, () =>
        {
            var title = request.Query("title");
            return Page(request, _categories.Values.Where(c => title is null || c["title"]!.GetValue<string>().Contains(title, StringComparison.OrdinalIgnoreCase)).ToList());
        }));
        Route("POST", "/api/marketplace-categories/", request => Authorized(request, () =>
        {
            var id = Guid.NewGuid();
            var category = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/marketplace-categories/{id}/",
                ["title"] = request.JsonObject["title"]!.DeepClone(),
                ["description"] = request.JsonObject["description"]?.DeepClone(),
            };
            _categories[id] = category;
            return EmulatorResponse.Json(category, 201);
        }));

        Route("GET", "/api/marketplace-provider-offerings/", request => Authorized(request, () =>
        {
            var customer = request.Query("customer_uuid");
            var matching = _offerings.Values.Where(o => customer is null || o["customer_uuid"]?.GetValue<string>() == customer).Select(o => WithPlans((JsonObject)o.DeepClone())).ToList();
            return Page(request, matching);
        }));
        Route("POST", "/api/marketplace-provider-offerings/", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            var id = Guid.NewGuid();
            var categoryUrl = body["category"]!.GetValue<string>();
            var category = _categories.Values.FirstOrDefault(c => c["url"]!.GetValue<string>() == categoryUrl);
            if (category is null)
            {
                return EmulatorResponse.Error(400, "Invalid category.");
            }

            var offering = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/marketplace-provider-offerings/{id}/",
                ["name"] = body["name"]!.DeepClone(),
                ["description"] = body["description"]?.DeepClone() ?? "",
                ["full_description"] = body["full_description"]?.DeepClone() ?? "",
                ["customer_uuid"] = ProviderCustomerUuid.ToString(),
                ["category"] = categoryUrl,
                ["category_uuid"] = category["uuid"]!.DeepClone(),
                ["category_title"] = category["title"]!.DeepClone(),
                ["type"] = body["type"]!.DeepClone(),
                ["state"] = "Draft",
                ["backend_id"] = body["backend_id"]?.DeepClone() ?? "",
                ["options"] = body["options"]?.DeepClone() ?? new JsonObject { ["order"] = new JsonArray(), ["options"] = new JsonObject() },
                ["resource_options"] = body["resource_options"]?.DeepClone() ?? new JsonObject { ["order"] = new JsonArray(), ["options"] = new JsonObject() },
                ["plugin_options"] = body["plugin_options"]?.DeepClone() ?? new JsonObject(),
                ["components"] = new JsonArray((body["components"]?.AsArray() ?? []).Select(c => (JsonNode)WithUuid((JsonObject)c!.DeepClone())).ToArray()),
            };
            _offerings[id] = offering;
            return EmulatorResponse.Json(WithPlans((JsonObject)offering.DeepClone()), 201);
        }));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/activate/", request => OnOffering(request, o => o["state"] = "Active"));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_overview/", request => OnOffering(request, o =>
        {
            foreach (var key in new[] { "name", "description", "full_description" })
            {
                if (request.JsonObject[key] is { } value)
                {
                    o[key] = value.DeepClone();
                }
            }
        }));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_description/", request => OnOffering(request, o =>
        {
            var category = _categories.Values.First(c => c["url"]!.GetValue<string>() == request.JsonObject["category"]!.GetValue<string>());
            o["category"] = category["url"]!.DeepClone();
            o["category_uuid"] = category["uuid"]!.DeepClone();
        }));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_options/", request => OnOffering(request, o => o["options"] = request.JsonObject["options"]!.DeepClone()));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_resource_options/", request => OnOffering(request, o => o["resource_options"] = request.JsonObject["resource_options"]!.DeepClone()));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_integration/", request => OnOffering(request, o =>
        {
            if (request.JsonObject["plugin_options"] is { } options)
            {
                o["plugin_options"] = options.DeepClone();
            }
        }));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/create_offering_component/", request => OnOffering(request, o =>
            o["components"]!.AsArray().Add(WithUuid((JsonObject)request.JsonObject.DeepClone())), status: 201));
        Route("POST", "/api/marketplace-provider-offerings/{uuid}/update_offering_component/", request => OnOffering(request, o =>
        {
            var components = o["components"]!.AsArray();
            var index = components.ToList().FindIndex(c => c!["uuid"]!.GetValue<string>() == request.JsonObject["uuid"]!.GetValue<string>());
            components[index] = request.JsonObject.DeepClone();
        }));

        Route("GET", "/api/marketplace-plans/", request => Authorized(request, () =>
        {
            var offering = request.Query("offering_uuid");
            return Page(request, _plans.Values.Where(p => offering is null || p["offering_uuid"]!.GetValue<string>() == offering).ToList());
        }));
        Route("POST", "/api/marketplace-plans/", request => Authorized(request, () =>
        {
            var offeringUrl = request.JsonObject["offering"]!.GetValue<string>();
            var offering = _offerings.Values.First(o => o["url"]?.GetValue<string>() == offeringUrl);
            var id = Guid.NewGuid();
            var plan = new JsonObject
            {
                ["uuid"] = id.ToString(),
                ["url"] = $"{Url}api/marketplace-plans/{id}/",
                ["name"] = request.JsonObject["name"]!.DeepClone(),
                ["description"] = request.JsonObject["description"]?.DeepClone() ?? "",
                ["unit"] = request.JsonObject["unit"]?.DeepClone() ?? "month",
                ["offering"] = offeringUrl,
                ["offering_uuid"] = offering["uuid"]!.DeepClone(),
                ["is_active"] = true,
                ["init_price"] = 0,
                ["switch_price"] = 0,
                ["organization_groups"] = new JsonArray(),
                ["components"] = new JsonArray(),
                ["prices"] = new JsonObject(),
                ["future_prices"] = new JsonObject(),
                ["quotas"] = new JsonObject(),
                ["resources_count"] = 0,
                ["plan_type"] = "usage-based",
                ["minimal_price"] = 0,
            };
            _plans[id] = plan;
            return EmulatorResponse.Json(plan, 201);
        }));
        Route("POST", "/api/marketplace-plans/{uuid}/update_prices/", request => Authorized(request, () =>
        {
            if (!_plans.TryGetValue(request.Id(), out var plan))
            {
                return EmulatorResponse.Error(404, "Not found.");
            }

            foreach (var (component, price) in request.JsonObject["prices"]!.AsObject())
            {
                plan["prices"]![component] = double.Parse(price!.GetValue<string>(), CultureInfo.InvariantCulture);
            }

            return EmulatorResponse.Empty(200);
        }));
    }

    private JsonObject WithPlans(JsonObject offering)
    {
        offering["plans"] = new JsonArray(_plans.Values.Where(p => p["offering_uuid"]!.GetValue<string>() == offering["uuid"]!.GetValue<string>())
            .Select(p => (JsonNode)p.DeepClone()).ToArray());
        return offering;
    }

    private static JsonObject WithUuid(JsonObject component)
    {
        component["uuid"] = Guid.NewGuid().ToString();
        return component;
    }

    private EmulatorResponse OnOffering(RouteRequest request, Action<JsonObject> change, int status = 200) => Authorized(request, () =>
    {
        if (!_offerings.TryGetValue(request.Id(), out var offering))
        {
            return EmulatorResponse.Error(404, "Not found.");
        }

        change(offering);
        return status == 200 ? EmulatorResponse.Json(new JsonObject { ["status"] = "OK" }) : EmulatorResponse.Empty(status);
    });

    private EmulatorResponse Authorized(RouteRequest request, Func<EmulatorResponse> handler)
    {
        if (RequireToken && request.Header("Authorization") != "Token " + Token)
        {
            return EmulatorResponse.Error(401, "Invalid token.");
        }

        lock (Sync)
        {
            return handler();
        }
    }

    private EmulatorResponse Transition(RouteRequest request, string? from, string to, Action<JsonObject>? also = null) => Authorized(request, () =>
    {
        if (!_orders.TryGetValue(request.Id(), out var order))
        {
            return EmulatorResponse.Error(404, "Not found.");
        }

        if (to == "done" && _stopBeforeDone.Remove(request.Id(), out var stopped))
        {
            order["state"] = stopped;
            order["modified"] = Now();
        }

        var state = order["state"]!.GetValue<string>();
        if (from is not null && state != from)
        {
            // Waldur's StateValidator: IncorrectStateException, 409.
            return EmulatorResponse.Error(409, $"Valid states for operation: {from}.");
        }

        order["state"] = to;
        order["modified"] = Now();
        also?.Invoke(order);
        return to == "executing" ? EmulatorResponse.Json(new JsonObject { ["detail"] = "Order has been approved." }) : EmulatorResponse.Empty(200);
    });

    private EmulatorResponse SetStateExecuting(RouteRequest request) => Authorized(request, () =>
    {
        if (!_orders.TryGetValue(request.Id(), out var order))
        {
            return EmulatorResponse.Error(404, "Not found.");
        }

        var offering = _offerings.TryGetValue(Guid.Parse(order["offering_uuid"]!.GetValue<string>()), out var found) ? found : null;
        if (offering?["type"]?.GetValue<string>() != "Marketplace.Slurm")
        {
            return EmulatorResponse.Error(405, "The order's offering type does not support this action.");
        }

        var state = order["state"]!.GetValue<string>();
        if (state is not ("pending-consumer" or "pending-provider" or "erred"))
        {
            return EmulatorResponse.Error(409, "Valid states for operation: pending-consumer, pending-provider, erred.");
        }

        order["state"] = "executing";
        order["modified"] = Now();
        return EmulatorResponse.Empty(200);
    });

    private EmulatorResponse OnResource(RouteRequest request, Action<JsonObject> change) => Authorized(request, () =>
    {
        if (!_resources.TryGetValue(request.Id(), out var resource))
        {
            return EmulatorResponse.Error(404, "Not found.");
        }

        change(resource);
        return EmulatorResponse.Json(new JsonObject { ["status"] = "OK" });
    });

    /// <summary>
    /// One page of a list as Waldur's DRF pagination serves it: <c>page_size</c> defaults to 10 and is cut to 300, a page
    /// number that is not one, or past the last page (an empty list still has page 1), is 404 "Invalid page.", and the
    /// answer carries <c>X-Result-Count</c> and a <c>Link</c> header with first, prev, next and last.
    /// </summary>
    private EmulatorResponse Page(RouteRequest request, IReadOnlyList<JsonObject> items)
    {
        const int DefaultPageSize = 10;
        const int MaxPageSize = 300;
        var size = int.TryParse(request.Query("page_size"), NumberStyles.None, CultureInfo.InvariantCulture, out var asked) && asked > 0
            ? Math.Min(asked, MaxPageSize)
            : DefaultPageSize;
        var pages = Math.Max(1, (items.Count + size - 1) / size);
        var page = request.Query("page") switch
        {
            null => 1,
            "last" => pages,
            var text => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number : 0,
        };
        if (page < 1 || page > pages)
        {
            return EmulatorResponse.Error(404, "Invalid page.");
        }

        var slice = items.Skip((page - 1) * size).Take(size).Select(i => (JsonNode)i.DeepClone()).ToArray();
        var links = new List<string> { $"<{PageLink(request, 1)}>; rel=\"first\"" };
        if (page > 1)
        {
            links.Add($"<{PageLink(request, page - 1)}>; rel=\"prev\"");
        }

        if (page < pages)
        {
            links.Add($"<{PageLink(request, page + 1)}>; rel=\"next\"");
        }

        links.Add($"<{PageLink(request, pages)}>; rel=\"last\"");
        return EmulatorResponse.Json(new JsonArray(slice)) with
        {
            Headers = new Dictionary<string, string>
            {
                ["X-Result-Count"] = items.Count.ToString(CultureInfo.InvariantCulture),
                ["Link"] = string.Join(", ", links),
            },
        };
    }

    /// <summary>The request's own address asking for another page; page 1 is the address without <c>page</c>, as DRF writes it.</summary>
    private string PageLink(RouteRequest request, int page)
    {
        var pathAndQuery = request.Message.PathAndQuery;
        var queryStart = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        var path = queryStart < 0 ? pathAndQuery : pathAndQuery[..queryStart];
        var parameters = (queryStart < 0 ? string.Empty : pathAndQuery[(queryStart + 1)..])
            .Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Where(p => !p.StartsWith("page=", StringComparison.Ordinal) && p != "page")
            .ToList();
        if (page > 1)
        {
            parameters.Add("page=" + page.ToString(CultureInfo.InvariantCulture));
        }

        return new Uri(Url, path).ToString() + (parameters.Count == 0 ? string.Empty : "?" + string.Join('&', parameters));
    }
}
