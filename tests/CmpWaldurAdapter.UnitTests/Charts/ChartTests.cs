using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using CmpWaldurAdapter.Testing.Contracts;
using YamlDotNet.RepresentationModel;

namespace CmpWaldurAdapter.UnitTests.Charts;

/// <summary>
/// Static checks of the Helm chart in charts/cmp-waldur-adapter (there is no helm binary here): the
/// templates and values.yaml agree both ways, every value is documented, the ConfigMap and Secret speak
/// the adapter's configuration sections, and the chart deploys the product's version.
/// </summary>
/// <remarks>
/// Template references are found by a small scanner of the Go template actions: <c>.Values.a.b</c>,
/// <c>$.Values.a.b</c> and <c>.root.Values.a.b</c> anywhere, and inside <c>with</c>/<c>range</c> blocks
/// whose expression is a value, the block's own <c>.x</c>, bare <c>.</c> and bound variables
/// (<c>range $k, $v := .Values.a</c>). A list element or a map entry under a range is the segment
/// <c>[]</c>. A value no template reads must say why in its comment, with the marker <c>@unused</c>.
/// </remarks>
public sealed partial class ChartTests
{
    private const string Chart = "charts/cmp-waldur-adapter";
    private const string AnyElement = "[]";
    private const string UnusedMarker = "@unused";

    /// <summary>Sections the adapter reads that the README's table does not list (yet).</summary>
    private static readonly string[] KnownSections = ["Catalogue", "Langflow", "Ragflow", "Credits"];

    /// <summary>README sections whose keys are free-form (the README names no keys).</summary>
    private static readonly string[] FreeFormSections = ["Serilog"];

    /// <summary>The credentials the issue puts in the Secret.</summary>
    private static readonly string[] SecretVariables = ["Waldur__Token", "Database__ConnectionString", "DataProtection__KeyEncryptionKey", "Langflow__SuperuserUsername", "Langflow__SuperuserPassword", "Ragflow__ApiKey"];

    // ---------------------------------------------------------------- (a) references exist

    [Fact]
    public void Every_values_path_a_template_references_exists_in_values_yaml()
    {
        var values = LoadValues();
        var scan = ScanTemplates();
        Assert.True(scan.Problems.Count == 0, string.Join('\n', scan.Problems));
        Assert.NotEmpty(scan.References);

        var missing = scan.References
            .Where(r => !Exists(values, r.Path, 0))
            .Select(r => $"{r.Location}: .Values.{Join(r.Path)} is not in values.yaml")
            .Distinct()
            .ToList();

        Assert.True(missing.Count == 0, string.Join('\n', missing));
    }

    // ---------------------------------------------------------------- (b) no dead values

    [Fact]
    public void Every_value_in_values_yaml_is_used_by_a_template()
    {
        var values = LoadValues();
        var documentation = ValuesDocumentation();
        var references = ScanTemplates().References;

        var unused = Leaves(values, [])
            .Where(leaf => !references.Any(r => Covers(r, leaf)))
            .Where(leaf => !IsDocumentedAsUnused(documentation, leaf))
            .Select(leaf => $"values.yaml: {Join(leaf)} is read by no template (mark it {UnusedMarker} in its comment if that is intended)")
            .ToList();

        Assert.True(unused.Count == 0, string.Join('\n', unused));
    }

    // ---------------------------------------------------------------- (c) documented values

    [Fact]
    public void Every_key_of_values_yaml_has_a_comment_above_it()
    {
        var keys = ValuesDocumentation();
        Assert.Contains(keys, k => k.Path.Length == 1);

        // Every top-level key, as the issue asks, and every nested key outside lists as values.yaml promises.
        var undocumented = keys
            .Where(k => k.Comment.Count == 0)
            .Select(k => $"values.yaml:{k.Line}: {Join(k.Path)} has no comment line directly above it")
            .ToList();

        Assert.True(undocumented.Count == 0, string.Join('\n', undocumented));
    }

    // ---------------------------------------------------------------- (d) Section__Key variables

    [Fact]
    public void ConfigMap_and_Secret_variables_are_Section__Key_of_known_sections()
    {
        var values = LoadValues();
        var readme = ReadmeConfigurationTable();
        Assert.Contains("Waldur", readme.Keys);
        Assert.Contains("Database", readme.Keys);

        var names = new List<(string Name, string Origin)>();
        var sections = new List<(string Section, string Origin)>();
        foreach (var tree in new[] { "config", "secrets" })
        {
            var root = Assert.IsType<YamlMappingNode>(values.Children[new YamlScalarNode(tree)]);
            foreach (var (key, node) in root.Children)
            {
                var section = ((YamlScalarNode)key).Value!;
                sections.Add((section, $"values.yaml {tree}.{section}"));
                names.AddRange(VariableNames(node, section).Select(n => (n, $"values.yaml {tree}")));
            }
        }

        foreach (var file in TemplateFiles())
        {
            names.AddRange(LiteralVariable().Matches(File.ReadAllText(file)).Select(m => (m.Groups["name"].Value, Path.GetFileName(file))));
        }

        Assert.Contains(names, n => n.Name == "Database__ConnectionString" && n.Origin == "_helpers.tpl");

        var problems = new List<string>();
        foreach (var (name, origin) in names.Distinct())
        {
            if (!SectionKeyForm().IsMatch(name))
            {
                problems.Add($"{origin}: {name} is not of the form Section__Key (PascalCase names, list indices as numbers)");
                continue;
            }

            var parts = name.Split("__");
            var section = parts[0];
            sections.Add((section, $"{origin}: {name}"));
            var key = parts.Skip(1).FirstOrDefault(p => !p.All(char.IsAsciiDigit));
            if (key is not null && readme.TryGetValue(section, out var row) && !FreeFormSections.Contains(section)
                && !Regex.IsMatch(row, $@"\b{Regex.Escape(key)}\b"))
            {
                problems.Add($"{origin}: {name}: the README's {section} row names no key {key}");
            }
        }

        foreach (var (section, origin) in sections.Distinct())
        {
            if (!readme.ContainsKey(section) && !KnownSections.Contains(section))
            {
                problems.Add($"{origin}: section {section} is neither in the README's configuration table nor a known section ({string.Join(", ", KnownSections)})");
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_Secret_holds_the_credentials_and_the_ConfigMap_none()
    {
        var values = LoadValues();
        var secrets = VariableNames(Child(values, "secrets"), null).ToList();
        var config = VariableNames(Child(values, "config"), null).ToList();

        Assert.Equal(SecretVariables.Order(StringComparer.Ordinal), secrets.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(config, n => SecretVariables.Contains(n) || SecretLooking().IsMatch(n));
        Assert.Equal(string.Empty, Scalar(values, "existingSecret"));
    }

    // ---------------------------------------------------------------- (e) versions

    [Fact]
    public void Chart_appVersion_equals_the_product_version()
    {
        var chart = LoadYaml(UpstreamSpecs.PathOf($"{Chart}/Chart.yaml"));
        var props = XDocument.Load(UpstreamSpecs.PathOf("Directory.Build.props"));
        var version = props.Descendants("Version").Select(v => v.Value.Trim()).FirstOrDefault();

        Assert.False(string.IsNullOrEmpty(version), "Directory.Build.props has no <Version>");
        Assert.Equal(version, Scalar(chart, "appVersion"));
        Assert.Equal("v2", Scalar(chart, "apiVersion"));
        Assert.Equal("cmp-waldur-adapter", Scalar(chart, "name"));
        Assert.Matches(@"^\d+\.\d+\.\d+", Scalar(chart, "version"));
    }

    // ---------------------------------------------------------------- more agreement checks

    [Fact]
    public void Every_ci_values_file_sets_only_values_that_exist()
    {
        var values = LoadValues();
        var files = Directory.GetFiles(UpstreamSpecs.PathOf($"{Chart}/ci"), "*.yaml");
        Assert.NotEmpty(files);

        var problems = new List<string>();
        foreach (var file in files)
        {
            foreach (var leaf in Leaves(LoadYaml(file), []))
            {
                // A path must exist, or stop at an empty map or list of values.yaml (a free-form value).
                var (node, depth) = Deepest(values, leaf);
                var freeForm = node is YamlMappingNode { Children.Count: 0 } or YamlSequenceNode { Children.Count: 0 };
                if (depth < leaf.Length && !freeForm)
                {
                    problems.Add($"{Path.GetFileName(file)}: {Join(leaf)} is not a value of the chart");
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_chart_readme_table_lists_every_top_level_value_and_only_real_ones()
    {
        var values = LoadValues();
        var readme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));
        var documented = ReadmeValueRow().Matches(readme).Select(m => m.Groups["path"].Value).ToList();
        Assert.NotEmpty(documented);

        var problems = new List<string>();
        foreach (var key in values.Children.Keys.Cast<YamlScalarNode>().Select(k => k.Value!))
        {
            if (!documented.Any(p => p == key || p.StartsWith(key + ".", StringComparison.Ordinal)))
            {
                problems.Add($"README.md: the values table has no row for {key}");
            }
        }

        foreach (var path in documented)
        {
            if (!Exists(values, path.Split('.'), 0))
            {
                problems.Add($"README.md: the values table lists {path}, which values.yaml does not have");
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_chart_keeps_its_operational_guarantees()
    {
        var values = LoadValues();
        var templates = TemplateFiles().ToDictionary(f => Path.GetFileName(f), File.ReadAllText, StringComparer.Ordinal);

        foreach (var required in new[] { "_helpers.tpl", "deployment.yaml", "migration-job.yaml", "configmap.yaml", "secret.yaml", "service.yaml", "ingress.yaml", "hpa.yaml", "pdb.yaml", "serviceaccount.yaml", "NOTES.txt" })
        {
            Assert.Contains(required, templates.Keys);
        }

        foreach (var helper in new[] { "name", "fullname", "labels", "selectorLabels", "serviceAccountName" })
        {
            Assert.Contains($"{{{{- define \"cmp-waldur-adapter.{helper}\" -}}}}", templates["_helpers.tpl"], StringComparison.Ordinal);
        }

        Assert.True(File.Exists(UpstreamSpecs.PathOf($"{Chart}/.helmignore")));

        // Probes, rolling on configuration changes, the serve command.
        var deployment = templates["deployment.yaml"];
        Assert.Contains("path: /healthz", deployment, StringComparison.Ordinal);
        Assert.Contains("path: /readyz", deployment, StringComparison.Ordinal);
        Assert.Contains("checksum/config:", deployment, StringComparison.Ordinal);
        Assert.Contains("checksum/secret:", deployment, StringComparison.Ordinal);
        Assert.Matches(@"args:\s*\n\s*- serve\b", deployment);
        Assert.Contains("include \"cmp-waldur-adapter.validate\"", deployment, StringComparison.Ordinal);

        // Behind the chart's own Ingress the client's address is in X-Forwarded-For (the widget's and try page's
        // per-address limits count it); set before the operator's config, which may turn it off again.
        var helpers = templates["_helpers.tpl"];
        var trustForwarded = helpers.IndexOf("{{- if .Values.ingress.enabled }}\n{{- $_ := set $env \"Web__TrustForwardedHeaders\" \"true\" }}", StringComparison.Ordinal);
        Assert.True(trustForwarded >= 0, "ingress.enabled sets Web__TrustForwardedHeaders");
        Assert.True(trustForwarded < helpers.IndexOf("range $section, $tree := .Values.config", StringComparison.Ordinal), "the operator's config comes after, and wins");

        // Helm reads a values file's numbers as float64, printed 52428800 as 5.24288e+07, which binds to no option
        // (the pods would not start): whole numbers reach the ConfigMap as integers. (No helm here to render it.)
        Assert.Contains("{{- if and (kindIs \"float64\" .value) (eq (float64 (int64 .value)) .value) }}\n{{- $text = toString (int64 .value) }}", helpers, StringComparison.Ordinal);

        // /metrics on a port of its own that neither the Service nor the Ingress exposes.
        Assert.Equal("9464", Scalar(values, "metricsPort"));
        Assert.Contains("{{ if .Values.metricsPort }};http://0.0.0.0:{{ .Values.metricsPort }}{{ end }}", deployment, StringComparison.Ordinal);
        Assert.Matches(@"- name: metrics\s*\n\s*containerPort: \{\{ \.Values\.metricsPort \}\}", deployment);
        Assert.Contains("$_ := set $env \"Metrics__Port\" (toString .Values.metricsPort)", helpers, StringComparison.Ordinal);
        Assert.DoesNotContain("metrics", templates["service.yaml"], StringComparison.Ordinal);
        Assert.DoesNotContain("metrics", templates["ingress.yaml"], StringComparison.Ordinal);

        // The optional upstream policies admit the adapter's own pods, as the Deployment labels them.
        var upstreamPolicy = templates["upstream-networkpolicy.yaml"];
        Assert.Contains("{{- if .Values.upstreamNetworkPolicy.enabled }}", upstreamPolicy, StringComparison.Ordinal);
        Assert.Contains("kind: NetworkPolicy", upstreamPolicy, StringComparison.Ordinal);
        Assert.Contains("app.kubernetes.io/component: server", upstreamPolicy, StringComparison.Ordinal);
        Assert.Contains("app.kubernetes.io/component: server", deployment, StringComparison.Ordinal);

        // The migration hook.
        var job = templates["migration-job.yaml"];
        Assert.Contains("kind: Job", job, StringComparison.Ordinal);
        Assert.Contains("helm.sh/hook: pre-install,pre-upgrade", job, StringComparison.Ordinal);
        Assert.Contains("helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded", job, StringComparison.Ordinal);
        Assert.Matches(@"args:\s*\n\s*- db\s*\n\s*- migrate\b", job);

        // SQLite is single-replica only: the chart refuses more replicas and autoscaling.
        var validate = Regex.Match(templates["_helpers.tpl"], @"define ""cmp-waldur-adapter\.validate"".*?(?=\{\{/\*|\z)", RegexOptions.Singleline).Value;
        Assert.Matches(@"gt \(int \.Values\.replicaCount\) 1 \}\}\s*\n\{\{- fail", validate);
        Assert.Matches(@"if \.Values\.autoscaling\.enabled \}\}\s*\n\{\{- fail", validate);

        // Non-root, read-only root file system with a writable /tmp, no capabilities, RuntimeDefault seccomp.
        var pod = Child(values, "podSecurityContext");
        var container = Child(values, "securityContext");
        Assert.Equal("true", Scalar(pod, "runAsNonRoot"));
        Assert.Equal("1000", Scalar(pod, "runAsUser"));
        Assert.Equal("RuntimeDefault", Scalar(Child(pod, "seccompProfile"), "type"));
        Assert.Equal("true", Scalar(container, "runAsNonRoot"));
        Assert.Equal("1000", Scalar(container, "runAsUser"));
        Assert.Equal("true", Scalar(container, "readOnlyRootFilesystem"));
        Assert.Equal("false", Scalar(container, "allowPrivilegeEscalation"));
        Assert.Equal(new[] { "ALL" }, ((YamlSequenceNode)Child(Child(container, "capabilities"), "drop")).Children.Cast<YamlScalarNode>().Select(s => s.Value!));
        Assert.Equal("RuntimeDefault", Scalar(Child(container, "seccompProfile"), "type"));
        Assert.Matches(@"- name: tmp\s*\n\s*emptyDir: \{\}", templates["_helpers.tpl"]);
        Assert.Matches(@"- name: tmp\s*\n\s*mountPath: /tmp", templates["_helpers.tpl"]);
    }

    // ---------------------------------------------------------------- the scanner itself

    [Fact]
    public void The_scanner_resolves_with_range_variables_and_the_root()
    {
        const string template = """
            {{- define "x.helper" -}}{{ .root.Values.fromHelper }}{{- end }}
            {{- if .Values.a.enabled }}
            {{- with .Values.a.block }}
            name: {{ .name }} {{ $.Values.b.c }} {{ toYaml . }}
            {{- else }}
            other: {{ .Values.a.fallback }}
            {{- end }}
            {{- end }}
            {{- range .Values.hosts }}
            {{- range .paths }}{{ .path }}{{ end }}
            {{- end }}
            {{- range $k, $v := .Values.map }}{{ $k }}={{ $v.x }}{{ end }}
            {{- $s := .Values.some }}{{ $s.thing | quote }}
            {{- /* .Values.commented.out */}}
            {{- printf "%s.Values.inString" "a" }}
            """;

        var scan = Scan("t.yaml", template);

        Assert.Empty(scan.Problems);
        var found = scan.References.Select(r => (Join(r.Path), r.ExactOnly)).ToHashSet();
        Assert.Equal(
            new HashSet<(string, bool)>
            {
                ("fromHelper", false),
                ("a.enabled", true),
                ("a.block", true),
                ("a.block.name", false),
                ("b.c", false),
                ("a.block", false),
                ("a.fallback", false),
                ("hosts", true),
                ("hosts.[].paths", true),
                ("hosts.[].paths.[].path", false),
                ("map", true),
                ("map.[].x", false),
                ("some", false),
                ("some.thing", false),
            },
            found);

        // .Values where the dot is a value, not the root, renders nothing: a bug the scanner names.
        var wrong = Scan("w.yaml", "{{- with .Values.a }}{{ .Values.b }}{{- end }}");
        Assert.Single(wrong.Problems);
    }

    [Fact]
    public void The_coverage_rule_lets_a_block_head_use_only_itself()
    {
        var head = new TemplateReference(["ingress"], ExactOnly: true, "t");
        var body = new TemplateReference(["ingress"], ExactOnly: false, "t");
        var element = new TemplateReference(["config", AnyElement], ExactOnly: false, "t");

        Assert.False(Covers(head, ["ingress", "enabled"]));
        Assert.True(Covers(body, ["ingress", "enabled"]));
        Assert.True(Covers(element, ["config", "Waldur", "BaseUrl"]));
        Assert.False(Covers(element, ["configX", "Waldur"]));
    }

    // ================================================================ values.yaml

    private static YamlMappingNode LoadValues() => LoadYaml(UpstreamSpecs.PathOf($"{Chart}/values.yaml"));

    private static YamlMappingNode LoadYaml(string path)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(File.ReadAllText(path));
        stream.Load(reader);
        return Assert.IsType<YamlMappingNode>(stream.Documents[0].RootNode);
    }

    private static YamlNode Child(YamlNode node, string key) => ((YamlMappingNode)node).Children[new YamlScalarNode(key)];

    private static string Scalar(YamlNode node, string key) => ((YamlScalarNode)Child(node, key)).Value ?? string.Empty;

    private static string Join(IEnumerable<string> path) => string.Join('.', path);

    /// <summary>Whether values.yaml has the path; <c>[]</c> matches any list element or map entry.</summary>
    private static bool Exists(YamlNode node, string[] path, int index)
    {
        if (index == path.Length)
        {
            return true;
        }

        var segment = path[index];
        if (segment == AnyElement)
        {
            var children = node switch
            {
                YamlSequenceNode sequence => sequence.Children.ToList(),
                YamlMappingNode mapping => mapping.Children.Values.ToList(),
                _ => null,
            };
            return children is not null && (index + 1 == path.Length || children.Any(c => Exists(c, path, index + 1)));
        }

        return node is YamlMappingNode map
            && map.Children.TryGetValue(new YamlScalarNode(segment), out var child)
            && Exists(child, path, index + 1);
    }

    /// <summary>The deepest node of values.yaml on the path, and how many segments led there.</summary>
    private static (YamlNode Node, int Depth) Deepest(YamlNode node, string[] path)
    {
        for (var depth = 0; depth < path.Length; depth++)
        {
            YamlNode? next = node switch
            {
                YamlMappingNode map when path[depth] != AnyElement => map.Children.TryGetValue(new YamlScalarNode(path[depth]), out var child) ? child : null,
                YamlSequenceNode { Children.Count: > 0 } sequence when path[depth] == AnyElement => sequence.Children[0],
                _ => null,
            };
            if (next is null)
            {
                return (node, depth);
            }

            node = next;
        }

        return (node, path.Length);
    }

    /// <summary>Paths of the leaves: scalars, empty maps and empty lists; list elements are <c>[]</c>.</summary>
    private static IEnumerable<string[]> Leaves(YamlNode node, string[] path)
    {
        switch (node)
        {
            case YamlMappingNode { Children.Count: > 0 } map:
                foreach (var (key, child) in map.Children)
                {
                    foreach (var leaf in Leaves(child, [.. path, ((YamlScalarNode)key).Value!]))
                    {
                        yield return leaf;
                    }
                }

                break;
            case YamlSequenceNode { Children.Count: > 0 } sequence:
                foreach (var leaf in sequence.Children.SelectMany(child => Leaves(child, [.. path, AnyElement])).DistinctBy(Join))
                {
                    yield return leaf;
                }

                break;
            default:
                yield return path;
                break;
        }
    }

    /// <summary>The environment variables a config/secrets tree becomes: keys and list indices joined by "__".</summary>
    private static IEnumerable<string> VariableNames(YamlNode node, string? prefix)
    {
        string Name(string segment) => prefix is null ? segment : $"{prefix}__{segment}";

        return node switch
        {
            YamlMappingNode map => map.Children.SelectMany(p => VariableNames(p.Value, Name(((YamlScalarNode)p.Key).Value!))),
            YamlSequenceNode sequence => sequence.Children.SelectMany((child, i) => VariableNames(child, Name(i.ToString(CultureInfo.InvariantCulture)))),
            _ => prefix is null ? [] : [prefix],
        };
    }

    private sealed record DocumentedKey(string[] Path, int Line, IReadOnlyList<string> Comment);

    /// <summary>Every mapping key of values.yaml outside lists, with the comment lines directly above it.</summary>
    private static List<DocumentedKey> ValuesDocumentation()
    {
        var path = UpstreamSpecs.PathOf($"{Chart}/values.yaml");
        var lines = File.ReadAllLines(path);
        var keys = new List<DocumentedKey>();

        void Walk(YamlMappingNode map, string[] parent)
        {
            foreach (var (key, child) in map.Children)
            {
                var scalar = (YamlScalarNode)key;
                var line = (int)scalar.Start.Line;
                var indentation = (int)scalar.Start.Column - 1;
                var comment = new List<string>();
                for (var i = line - 2; i >= 0; i--)
                {
                    var text = lines[i];
                    var trimmed = text.TrimStart();
                    if (!trimmed.StartsWith('#') || text.Length - trimmed.Length != indentation)
                    {
                        break;
                    }

                    comment.Insert(0, trimmed);
                }

                string[] keyPath = [.. parent, scalar.Value!];
                keys.Add(new DocumentedKey(keyPath, line, comment));
                if (child is YamlMappingNode nested)
                {
                    Walk(nested, keyPath);
                }
            }
        }

        Walk(LoadYaml(path), []);
        return keys;
    }

    private static bool IsDocumentedAsUnused(List<DocumentedKey> documentation, string[] leaf) =>
        documentation.Any(k => k.Path.Length <= leaf.Length
            && k.Path.SequenceEqual(leaf.Take(k.Path.Length))
            && k.Comment.Any(c => c.Contains(UnusedMarker, StringComparison.Ordinal)));

    // ================================================================ README

    /// <summary>The repository README's configuration table: section name to its row.</summary>
    private static Dictionary<string, string> ReadmeConfigurationTable()
    {
        var lines = File.ReadAllLines(UpstreamSpecs.PathOf("README.md"));
        var start = Array.FindIndex(lines, l => Regex.IsMatch(l, @"^\|\s*Section\s*\|"));
        Assert.True(start >= 0, "README.md has no configuration table (| Section | ... |)");

        var rows = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(start + 1).TakeWhile(l => l.StartsWith('|')))
        {
            var cells = line.Split('|');
            var section = cells[1].Trim().Trim('`');
            if (!section.All(c => c == '-' || c == ':'))
            {
                rows[section] = line;
            }
        }

        return rows;
    }

    // ================================================================ templates

    private static IEnumerable<string> TemplateFiles() =>
        Directory.GetFiles(UpstreamSpecs.PathOf($"{Chart}/templates")).Order(StringComparer.Ordinal);

    private static TemplateScan ScanTemplates()
    {
        var references = new List<TemplateReference>();
        var problems = new List<string>();
        foreach (var file in TemplateFiles())
        {
            var scan = Scan(Path.GetFileName(file), File.ReadAllText(file));
            references.AddRange(scan.References);
            problems.AddRange(scan.Problems);
        }

        return new TemplateScan(references, problems);
    }

    /// <summary>
    /// Whether a reference reads a leaf of values.yaml: a block head (<c>if</c>, <c>with</c>, <c>range</c>)
    /// reads exactly its path; anything else reads the path and everything below it (<c>toYaml .Values.x</c>).
    /// </summary>
    private static bool Covers(TemplateReference reference, string[] leaf)
    {
        if (reference.Path.Length > leaf.Length || (reference.ExactOnly && reference.Path.Length != leaf.Length))
        {
            return false;
        }

        return reference.Path.Select((segment, i) => segment == AnyElement || segment == leaf[i]).All(match => match);
    }

    private sealed record TemplateReference(string[] Path, bool ExactOnly, string Location);

    private sealed record TemplateScan(List<TemplateReference> References, List<string> Problems);

    /// <summary>What <c>.</c> is: the root context, a value of values.yaml, or something else.</summary>
    private sealed record Scope(bool IsRoot, string[]? Path)
    {
        public static readonly Scope Root = new(true, null);
        public static readonly Scope Other = new(false, null);
    }

    private static TemplateScan Scan(string name, string text)
    {
        var references = new List<TemplateReference>();
        var problems = new List<string>();
        var outer = new Stack<Scope>();
        var variables = new Dictionary<string, string[]?>(StringComparer.Ordinal);
        var dot = Scope.Root;

        foreach (Match action in TemplateAction().Matches(text))
        {
            var body = action.Groups["body"].Value.Trim();
            if (body.StartsWith("/*", StringComparison.Ordinal))
            {
                continue;
            }

            body = QuotedString().Replace(body, "\"\"");
            var location = $"{name}:{text.AsSpan(0, action.Index).Count('\n') + 1}";
            var (keyword, rest) = SplitKeyword(body);
            switch (keyword)
            {
                case "if":
                    Collect(rest, exactOnly: true);
                    outer.Push(dot);
                    break;
                case "with" or "range":
                    outer.Push(dot);
                    dot = Enter(keyword, rest);
                    break;
                case "define" or "block":
                    outer.Push(dot);
                    dot = Scope.Root; // helpers are included with the root context (or read .root.Values).
                    break;
                case "else":
                    if (outer.Count == 0)
                    {
                        problems.Add($"{location}: else outside a block");
                        break;
                    }

                    dot = outer.Peek();
                    var (next, condition) = SplitKeyword(rest);
                    if (next == "if")
                    {
                        Collect(condition, exactOnly: true);
                    }
                    else if (next == "with")
                    {
                        dot = Enter(next, condition);
                    }

                    break;
                case "end":
                    if (outer.Count == 0)
                    {
                        problems.Add($"{location}: end without a block");
                        break;
                    }

                    dot = outer.Pop();
                    break;
                default:
                    Collect(body, exactOnly: false);
                    var assignment = Assignment().Match(body);
                    if (assignment.Success)
                    {
                        variables[assignment.Groups["var"].Value] = Leading(assignment.Groups["expr"].Value);
                    }

                    break;
            }

            Scope Enter(string kind, string head)
            {
                Collect(head, exactOnly: true);
                var declaration = Declaration().Match(head);
                var target = Leading(declaration.Groups["expr"].Value);
                var scope = target is null ? Scope.Other : new Scope(false, kind == "range" ? [.. target, AnyElement] : target);
                var element = declaration.Groups["second"].Success ? declaration.Groups["second"].Value : declaration.Groups["first"].Value;
                if (element.Length > 0)
                {
                    variables[element] = scope.Path;
                }

                if (declaration.Groups["second"].Success)
                {
                    variables[declaration.Groups["first"].Value] = null; // the key or index
                }

                return scope;
            }

            void Collect(string expression, bool exactOnly)
            {
                foreach (Match operand in Operand().Matches(expression))
                {
                    var path = Resolve(operand.Value, report: true);
                    if (path is not null)
                    {
                        references.Add(new TemplateReference(path, exactOnly, location));
                    }
                }
            }

            string[]? Leading(string expression)
            {
                var operand = Operand().Match(expression.TrimStart('(', ' '));
                return operand.Success && operand.Index == 0 ? Resolve(operand.Value, report: false) : null;
            }

            string[]? Resolve(string operand, bool report)
            {
                string? variable = null;
                var rest = operand;
                if (operand.StartsWith('$'))
                {
                    var end = operand.IndexOf('.', StringComparison.Ordinal);
                    variable = end < 0 ? operand : operand[..end];
                    rest = end < 0 ? string.Empty : operand[end..];
                }

                var segments = rest.Split('.', StringSplitOptions.RemoveEmptyEntries);
                if (variable == "$")
                {
                    return segments.FirstOrDefault() == "Values" ? segments[1..] : null;
                }

                if (variable is not null)
                {
                    if (variables.TryGetValue(variable, out var bound) && bound is not null)
                    {
                        return [.. bound, .. segments];
                    }

                    return segments.Length > 1 && segments[1] == "Values" ? segments[2..] : null; // $root.Values.x
                }

                if (segments.Length == 0)
                {
                    return dot.Path; // a bare "." inside a with/range block over a value
                }

                if (segments[0] == "Values")
                {
                    if (dot.Path is not null && report)
                    {
                        problems.Add($"{location}: {operand} inside a block whose dot is .Values.{Join(dot.Path)}: use $.Values");
                    }

                    return dot.IsRoot ? segments[1..] : null;
                }

                if (segments.Length > 1 && segments[1] == "Values")
                {
                    return segments[2..]; // .root.Values.x, in a helper called with a dict
                }

                return dot.Path is null ? null : [.. dot.Path, .. segments];
            }
        }

        if (outer.Count != 0)
        {
            problems.Add($"{name}: {outer.Count} block(s) not closed with end");
        }

        return new TemplateScan(references, problems);
    }

    private static (string Keyword, string Remainder) SplitKeyword(string body)
    {
        var match = Keyword().Match(body);
        return match.Success ? (match.Groups["keyword"].Value, body[match.Length..].Trim()) : (string.Empty, body);
    }

    // ================================================================ patterns

    /// <summary>A template action, <c>{{ ... }}</c> with optional trim markers.</summary>
    [GeneratedRegex(@"\{\{-?\s*(?<body>.*?)\s*-?\}\}", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex TemplateAction();

    [GeneratedRegex(@"""(?:[^""\\]|\\.)*""|`[^`]*`", RegexOptions.CultureInvariant)]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"^(?<keyword>if|else|end|with|range|define|block|template)\b", RegexOptions.CultureInvariant)]
    private static partial Regex Keyword();

    /// <summary>A field chain or variable operand: <c>.</c>, <c>.a.b</c>, <c>$</c>, <c>$.a</c>, <c>$v.a</c>.</summary>
    [GeneratedRegex(@"(?<![\w)\]])(?:\$\w*|\.)[\w.]*", RegexOptions.CultureInvariant)]
    private static partial Regex Operand();

    [GeneratedRegex(@"^(?<var>\$\w+)\s*:?=\s*(?<expr>.+)$", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex Assignment();

    [GeneratedRegex(@"^(?:(?<first>\$\w+)\s*(?:,\s*(?<second>\$\w+)\s*)?:=\s*)?(?<expr>.*)$", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex Declaration();

    /// <summary>A variable name written out in a template, e.g. "Database__ConnectionString".</summary>
    [GeneratedRegex(@"""(?<name>[A-Za-z][A-Za-z0-9]*__[A-Za-z0-9_.]+)""", RegexOptions.CultureInvariant)]
    private static partial Regex LiteralVariable();

    /// <summary>Section__Key[__Sub...]: PascalCase section and keys (dots allowed, as in Serilog overrides), list indices as numbers.</summary>
    [GeneratedRegex(@"^[A-Z][A-Za-z0-9]*(__([A-Z][A-Za-z0-9.]*|[0-9]+))+$", RegexOptions.CultureInvariant)]
    private static partial Regex SectionKeyForm();

    [GeneratedRegex(@"Token|Password|ApiKey|Secret|ConnectionString", RegexOptions.CultureInvariant)]
    private static partial Regex SecretLooking();

    /// <summary>A row of the chart README's values table: | `path` | ... |.</summary>
    [GeneratedRegex(@"^\|\s*`(?<path>[A-Za-z][\w.]*)`\s*\|", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex ReadmeValueRow();
}
