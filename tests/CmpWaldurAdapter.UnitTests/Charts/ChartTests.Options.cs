using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Contracts;
using CmpWaldurAdapter.UnitTests.Hosting;
using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;
using static CmpWaldurAdapter.UnitTests.Hosting.ConfigurationSections;

namespace CmpWaldurAdapter.UnitTests.Charts;

/// <summary>
/// The configuration keys the README, values.yaml and the chart's templates name, checked against the options classes
/// themselves (found by their <c>SectionName</c>): binding ignores keys that match no property, so a misspelt key in
/// the docs or the chart would be an operator's setting silently dropped.
/// </summary>
public sealed partial class ChartTests
{
    /// <summary>Keys read from configuration directly rather than through an options class.</summary>
    private static readonly string[] KeysReadDirectly = ["Metrics:Port"];

    [Fact]
    public void Every_configuration_key_the_docs_and_the_chart_name_binds_to_an_options_property()
    {
        // The table's rows are read against the options classes themselves (ReadmeRowKeys reports what matches none).
        var problems = new List<string>();
        foreach (var (section, row) in ReadmeConfigurationTable().Where(r => !FreeFormSections.Contains(r.Key)))
        {
            ReadmeRowKeys(section, row, out var rowProblems);
            problems.AddRange(rowProblems);
        }

        var keys = new List<(string Key, string Origin)>();

        var values = LoadValues();
        foreach (var tree in new[] { "config", "secrets" })
        {
            keys.AddRange(VariableNames(Child(values, tree), null).Select(n => (n.Replace("__", ":", StringComparison.Ordinal), $"values.yaml {tree}")));
        }

        foreach (var file in TemplateFiles())
        {
            keys.AddRange(LiteralVariable().Matches(File.ReadAllText(file)).Select(m => (m.Groups["name"].Value.Replace("__", ":", StringComparison.Ordinal), Path.GetFileName(file))));
        }

        foreach (var (file, text) in ConfigurationProse())
        {
            keys.AddRange(ProseKey().Matches(text)
                .Select(m => (m.Groups["key"].Value.Replace("__", ":", StringComparison.Ordinal), file))
                .Where(k => !k.Item1.StartsWith("Section:", StringComparison.Ordinal))); // the docs' placeholder, Section__Key
            keys.AddRange(ChartValuePath().Matches(text).Select(m => (ChartIndex().Replace(m.Groups["path"].Value, ".$1").Replace('.', ':'), file)));
        }

        Assert.Contains(keys, k => k.Key == "Orders:LeaseDuration" && k.Origin == "README.md");
        Assert.Contains(keys, k => k.Key == "Waldur:Token" && k.Origin == "values.yaml secrets");
        Assert.Contains(keys, k => k.Key == "Web:TrustForwardedHeaders" && k.Origin == "_helpers.tpl");

        problems.AddRange(keys.Distinct()
            .Select(k => Unbound(k.Key) is { } why ? $"{k.Origin}: {k.Key}: {why}" : null)
            .OfType<string>());
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    /// <summary>The documented example configurations pass start-up validation: the README's minimum and the chart's ci values.</summary>
    [Fact]
    public void The_readme_minimum_configuration_starts()
    {
        var readme = File.ReadAllText(UpstreamSpecs.PathOf("README.md"));
        var minimum = Regex.Match(readme, @"The minimum:\s*```json\n(?<json>.*?)```", RegexOptions.Singleline);
        Assert.True(minimum.Success, "README.md: no json block after \"The minimum:\"");

        using var json = new MemoryStream(Encoding.UTF8.GetBytes(minimum.Groups["json"].Value));
        OptionsValidationTests.ValidateAtStart(new ConfigurationBuilder().AddJsonStream(json).Build());
    }

    [Theory]
    [InlineData("ci/sqlite-values.yaml")]
    [InlineData("ci/postgres-values.yaml")]
    public void The_chart_example_values_start(string file)
    {
        // What the ConfigMap and Secret give the adapter: values.yaml's config and secrets with the example's over them.
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var values in new[] { LoadValues(), LoadYaml(UpstreamSpecs.PathOf($"{Chart}/{file}")) })
        {
            foreach (var tree in new[] { "config", "secrets" })
            {
                if (values.Children.TryGetValue(new YamlScalarNode(tree), out var node))
                {
                    AddSettings(node, null, settings);
                }
            }
        }

        OptionsValidationTests.ValidateAtStart(settings);
    }

    /// <summary>A values tree as configuration keys; an empty value is not rendered (the adapter's default applies).</summary>
    private static void AddSettings(YamlNode node, string? prefix, Dictionary<string, string?> settings)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (key, child) in map.Children)
                {
                    var name = ((YamlScalarNode)key).Value;
                    AddSettings(child, prefix is null ? name : $"{prefix}:{name}", settings);
                }

                break;
            case YamlSequenceNode sequence:
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    AddSettings(sequence.Children[i], $"{prefix}:{i}", settings);
                }

                break;
            case YamlScalarNode { Value: { Length: > 0 } value }:
                settings[prefix!] = value;
                break;
        }
    }

    [Fact]
    public void Every_option_an_operator_can_set_is_in_the_readme_table()
    {
        var readme = ReadmeConfigurationTable();
        var documented = readme.Where(r => ConfigurationSections.All.ContainsKey(r.Key))
            .SelectMany(r => ReadmeRowKeys(r.Key, r.Value, out _))
            .Select(k => k.Key)
            .ToHashSet(StringComparer.Ordinal);

        var missing = new List<string>();
        foreach (var (section, type) in ConfigurationSections.All)
        {
            var root = section.Split(':')[0];
            if (!readme.ContainsKey(root))
            {
                missing.Add($"README.md: the configuration table has no {root} row");
                continue;
            }

            missing.AddRange(BindableProperties(ElementType(type) ?? type)
                .Select(p => $"{section}:{p.Name}")
                .Where(key => !documented.Contains(key))
                .Select(key => $"README.md: the {root} row does not document {key}"));
        }

        Assert.True(missing.Count == 0, string.Join('\n', missing));
    }

    [Fact]
    public void Documented_defaults_are_the_options_real_defaults()
    {
        var problems = new List<string>();
        foreach (var (section, row) in ReadmeConfigurationTable().Where(r => ConfigurationSections.All.ContainsKey(r.Key)))
        {
            foreach (var (key, documented) in ReadmeRowKeys(section, row, out _).Where(k => k.Default is not null))
            {
                if (DefaultMismatch(key, documented!, readmeNotation: true) is { } why)
                {
                    problems.Add($"README.md, the {section} row: {key}: {why}");
                }
            }
        }

        var checkedValues = 0;
        foreach (var key in ValuesDocumentation().Where(k => k.Path.Length == 3 && k.Path[0] == "config"))
        {
            var empty = EmptyMeans().Match(string.Join(' ', key.Comment));
            if (empty.Success)
            {
                checkedValues++;
                var name = $"{key.Path[1]}:{key.Path[2]}";
                if (DefaultMismatch(name, empty.Groups["value"].Value.TrimEnd('.'), readmeNotation: false) is { } why)
                {
                    problems.Add($"values.yaml:{key.Line}: {name}: {why}");
                }
            }
        }

        Assert.True(checkedValues > 30, $"only {checkedValues} values.yaml comments say what empty means");

        // The chart README's table: | `config.Waldur.AttemptTimeout` | `""` (30 s) | ... |
        var chartRows = ChartReadmeDefault().Matches(File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md")));
        Assert.True(chartRows.Count > 30, $"only {chartRows.Count} rows of the chart README give the adapter's default");
        foreach (Match row in chartRows)
        {
            var name = $"{row.Groups["section"].Value}:{row.Groups["key"].Value}";
            if (DefaultMismatch(name, row.Groups["value"].Value, readmeNotation: true) is { } why)
            {
                problems.Add($"{Chart}/README.md: config.{name.Replace(':', '.')}: {why}");
            }
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void Options_the_readme_calls_secrets_are_in_the_Secret_and_not_the_ConfigMap()
    {
        var values = LoadValues();
        var secrets = VariableNames(Child(values, "secrets"), null).ToHashSet(StringComparer.Ordinal);
        var config = VariableNames(Child(values, "config"), null).ToHashSet(StringComparer.Ordinal);

        var marked = ReadmeConfigurationTable()
            .SelectMany(r => SecretMarking().Matches(r.Value)
                .SelectMany(m => BacktickedIdentifier().Matches(m.Groups["keys"].Value)
                    .Select(k => k.Groups["id"].Value)
                    .TakeLast(m.Groups["plural"].Success ? int.MaxValue : 1) // "(secret)" marks the key before it only
                    .Select(k => $"{r.Key}__{k}")))
            .ToList();
        Assert.Contains("Waldur__Token", marked);

        var problems = marked.Where(v => !secrets.Contains(v)).Select(v => $"README.md calls {v} a secret, but values.yaml's secrets has no such key")
            .Concat(marked.Where(config.Contains).Select(v => $"README.md calls {v} a secret, but values.yaml puts it in the ConfigMap (config)"))
            .ToList();
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void A_misspelt_key_binds_to_nothing()
    {
        Assert.Contains("Knowledge:Url", ConfigurationSections.All.Keys);
        Assert.Null(Unbound("Chat:MaxBodyBytes"));
        Assert.Null(Unbound("Knowledge:Url:MaxBytes"));
        Assert.Null(Unbound("Offerings:0:Uuid"));
        Assert.Null(Unbound("Web:ForwardedProxyNetworks:0"));
        Assert.Contains("no property MaxBodySize", Unbound("Chat:MaxBodySize"), StringComparison.Ordinal);
        Assert.Contains("spelt maxBodyBytes", Unbound("Chat:maxBodyBytes"), StringComparison.Ordinal);
        Assert.NotNull(Unbound("Chats:MaxBodyBytes"));
        Assert.NotNull(Unbound("Offerings:first:Uuid"));
    }

    // ================================================================ options classes

    /// <summary>Why a colon-separated key binds to nothing, or null when it names a real option (or a sub-section of them).</summary>
    private static string? Unbound(string key)
    {
        var segments = key.Split(':');
        if (FreeFormSections.Contains(segments[0]) || KeysReadDirectly.Contains(key))
        {
            return null;
        }

        for (var length = segments.Length; length >= 1; length--)
        {
            if (!ConfigurationSections.All.TryGetValue(string.Join(':', segments[..length]), out var type))
            {
                continue;
            }

            foreach (var segment in segments[length..])
            {
                if (ElementType(type) is { } element)
                {
                    if (!segment.All(char.IsAsciiDigit))
                    {
                        return $"{type.Name} is a list, and {segment} is no index";
                    }

                    type = element;
                    continue;
                }

                var property = BindableProperties(type).FirstOrDefault(p => p.Name == segment);
                if (property is null)
                {
                    var alike = BindableProperties(type).FirstOrDefault(p => string.Equals(p.Name, segment, StringComparison.OrdinalIgnoreCase));
                    return alike is null
                        ? $"{type.Name} has no property {segment}"
                        : $"{type.Name}.{alike.Name} is spelt {segment} (binding ignores case, the docs should not)";
                }

                type = property.PropertyType;
            }

            return null;
        }

        return $"no options class binds the section {segments[0]}";
    }

    private static PropertyInfo? Property(string key, out object? defaults)
    {
        defaults = null;
        var cut = key.LastIndexOf(':');
        if (!ConfigurationSections.All.TryGetValue(key[..cut], out var type))
        {
            return null;
        }

        type = ElementType(type) ?? type;
        defaults = type.IsAbstract ? null : Activator.CreateInstance(type);
        return BindableProperties(type).FirstOrDefault(p => p.Name == key[(cut + 1)..]);
    }

    // ================================================================ the README's table

    private sealed record DocumentedOption(string Key, string? Default);

    /// <summary>
    /// The keys one row of the README's table documents, with the default written after each: a backticked
    /// PascalCase word is a key of the section (or of the sub-section whose parenthesis it stands in), an enum value,
    /// a sub-section or another section; anything else is a problem.
    /// </summary>
    private static List<DocumentedOption> ReadmeRowKeys(string section, string row, out List<string> problems)
    {
        problems = [];
        var options = new List<DocumentedOption>();
        if (!ConfigurationSections.All.TryGetValue(section, out var sectionType))
        {
            var known = KeysReadDirectly.Where(k => k.StartsWith(section + ":", StringComparison.Ordinal)).ToList();
            if (known.Count == 0)
            {
                problems.Add($"README.md: the {section} row is no section an options class binds");
            }

            options.AddRange(known.Select(k => new DocumentedOption(k, null)));
            return options;
        }

        var cell = row.Split('|', 3)[2];
        var enums = ConfigurationSections.All.Where(s => s.Key == section || s.Key.StartsWith(section + ":", StringComparison.Ordinal))
            .SelectMany(s => BindableProperties(ElementType(s.Value) ?? s.Value))
            .Select(p => Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType)
            .Where(t => t.IsEnum)
            .SelectMany(Enum.GetNames)
            .ToHashSet(StringComparer.Ordinal);

        var scopes = new Stack<string>();
        var scope = section;
        string? opened = null;
        for (var i = 0; i < cell.Length; i++)
        {
            switch (cell[i])
            {
                case '(':
                    scopes.Push(scope);
                    scope = opened ?? scope;
                    opened = null;
                    break;
                case ')':
                    scope = scopes.Count > 0 ? scopes.Pop() : section;
                    break;
                case '`':
                    var end = cell.IndexOf('`', i + 1);
                    var token = cell[(i + 1)..end];
                    i = end;
                    opened = null;
                    foreach (Match identifier in PascalCaseWord().Matches(token))
                    {
                        var name = identifier.Value;
                        var type = ConfigurationSections.All[scope];
                        if (BindableProperties(ElementType(type) ?? type).Any(p => p.Name == name))
                        {
                            var written = token == name ? DocumentedDefault().Match(cell, end + 1) : Match.Empty;
                            options.Add(new DocumentedOption($"{scope}:{name}", written.Success ? written.Groups["value"].Value : null));
                        }
                        else if (ConfigurationSections.All.ContainsKey($"{scope}:{name}"))
                        {
                            opened = $"{scope}:{name}";
                        }
                        else if (!enums.Contains(name) && !ConfigurationSections.All.ContainsKey(name))
                        {
                            problems.Add($"README.md, the {section} row: `{name}` is no key of {scope} ({type.Name}), nor one of its values or sections");
                        }
                    }

                    break;
            }
        }

        return options;
    }

    /// <summary>Why a documented default differs from the property's initial value, or null when they agree.</summary>
    private static string? DefaultMismatch(string key, string documented, bool readmeNotation)
    {
        var property = Property(key, out var defaults);
        if (property is null || defaults is null)
        {
            return property is null ? "no such property" : null;
        }

        var actual = property.GetValue(defaults);
        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        object? expected;
        if (type == typeof(string) || type == typeof(Uri))
        {
            if (!readmeNotation && type == typeof(string))
            {
                return null; // values.yaml describes string defaults in words
            }

            return string.Equals(documented, actual?.ToString(), StringComparison.Ordinal) ? null : $"documented {documented}, the default is {actual}";
        }

        if (type == typeof(bool))
        {
            expected = bool.TryParse(documented, out var flag) ? flag : null;
        }
        else if (type.IsEnum)
        {
            expected = Enum.TryParse(type, documented, ignoreCase: false, out var member) ? member : null;
        }
        else if (type == typeof(TimeSpan))
        {
            expected = readmeNotation ? ReadmeDuration(documented) : TimeSpan.TryParse(documented, CultureInfo.InvariantCulture, out var span) ? span : null;
        }
        else if (type == typeof(int) || type == typeof(long))
        {
            var quantity = ReadmeQuantity(documented);
            expected = quantity is null ? null : Convert.ChangeType(quantity.Value, type, CultureInfo.InvariantCulture);
        }
        else
        {
            return null;
        }

        return expected is null ? $"the documented default {documented} is not a {type.Name}"
            : Equals(expected, actual) ? null
            : $"documented {documented}, the default is {actual}";
    }

    private static TimeSpan? ReadmeDuration(string text)
    {
        var match = Regex.Match(text, @"^(?<n>\d+(?:\.\d+)?)(?:\s*(?<unit>ms|s|min|h|days?))?$", RegexOptions.CultureInvariant);
        if (!match.Success)
        {
            return null;
        }

        var n = double.Parse(match.Groups["n"].Value, CultureInfo.InvariantCulture);
        return match.Groups["unit"].Value switch
        {
            "ms" => TimeSpan.FromMilliseconds(n),
            "s" => TimeSpan.FromSeconds(n),
            "min" => TimeSpan.FromMinutes(n),
            "h" => TimeSpan.FromHours(n),
            "day" or "days" => TimeSpan.FromDays(n),
            _ => n == 0 ? TimeSpan.Zero : null, // a bare number is no duration, except nothing at all
        };
    }

    private static long? ReadmeQuantity(string text)
    {
        var match = Regex.Match(text, @"^(?<n>\d[\d,]*)(?:\s*(?<unit>KiB|MB|MiB))?$", RegexOptions.CultureInvariant);
        if (!match.Success)
        {
            return null;
        }

        var n = long.Parse(match.Groups["n"].Value.Replace(",", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture);
        return match.Groups["unit"].Value switch
        {
            "KiB" => n * 1024,
            "MB" or "MiB" => n * 1024 * 1024, // the README writes MB for 2^20 bytes, as the options do
            _ => n,
        };
    }

    /// <summary>The texts that tell operators configuration keys by name.</summary>
    private static IEnumerable<(string File, string Text)> ConfigurationProse()
    {
        var files = new[] { "README.md", $"{Chart}/README.md", $"{Chart}/values.yaml" }
            .Concat(Directory.GetFiles(UpstreamSpecs.PathOf("docs"), "*.md").Select(f => $"docs/{Path.GetFileName(f)}"))
            .Concat(TemplateFiles().Select(f => $"{Chart}/templates/{Path.GetFileName(f)}"));
        return files.Select(f => (f, File.ReadAllText(UpstreamSpecs.PathOf(f))));
    }

    // ================================================================ patterns

    [GeneratedRegex(@"\b[A-Z][A-Za-z0-9]*\b", RegexOptions.CultureInvariant)]
    private static partial Regex PascalCaseWord();

    /// <summary>What follows a key in the README's table: <c>= `Value`</c>, <c>(30 s</c>, <c>(`text`</c> or <c>20 s</c>.</summary>
    [GeneratedRegex(@"\G(?:\s*=\s*`(?<value>[^`]+)`|\s*\(?\s*(?:`(?<value>[^`]+)`|(?<value>(?:true|false|\d[\d,]*(?:\.\d+)?)(?:\s*(?:ms|s|min|h|days?|KiB|MiB|MB))?)(?=[\s),;:]|$)))", RegexOptions.CultureInvariant)]
    private static partial Regex DocumentedDefault();

    /// <summary>A key named in prose: `Section:Key` or `Section__Key`, with any sub-keys.</summary>
    [GeneratedRegex(@"`(?<key>[A-Z][A-Za-z0-9]*(?:(?::|__)(?:[A-Z][A-Za-z0-9.]*|\d+))+)`", RegexOptions.CultureInvariant)]
    private static partial Regex ProseKey();

    /// <summary>A chart value under config or secrets, e.g. config.Offerings[0].Uuid.</summary>
    [GeneratedRegex(@"\b(?:config|secrets)\.(?<path>[A-Z]\w*(?:\.[A-Z]\w*|\[\d+\])*)", RegexOptions.CultureInvariant)]
    private static partial Regex ChartValuePath();

    [GeneratedRegex(@"\[(\d+)\]", RegexOptions.CultureInvariant)]
    private static partial Regex ChartIndex();

    /// <summary>A row of the chart README for an option left empty, with the adapter's default after it: (30 s), (Ledger).</summary>
    [GeneratedRegex(@"^\|\s*`config\.(?<section>[A-Z]\w*)\.(?<key>[A-Z]\w*)`\s*\|\s*`""""`\s*\((?<value>true|false|[A-Z]\w*|\d[\d,]*(?:\.\d+)?(?:\s*(?:ms|s|min|h|days?|KiB|MiB|MB))?)\)\s*\|", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex ChartReadmeDefault();

    /// <summary>A values.yaml comment's "empty = 00:00:30".</summary>
    [GeneratedRegex(@"\bempty = (?<value>[^\s;,()]+)", RegexOptions.CultureInvariant)]
    private static partial Regex EmptyMeans();

    /// <summary>Keys the README marks secret: "`Token` (secret)", "`A`, `B` (secrets)".</summary>
    [GeneratedRegex(@"(?<keys>(?:`\w+`,\s*)*`\w+`)\s*\(secret(?<plural>s)?\b", RegexOptions.CultureInvariant)]
    private static partial Regex SecretMarking();

    [GeneratedRegex(@"`(?<id>\w+)`", RegexOptions.CultureInvariant)]
    private static partial Regex BacktickedIdentifier();
}
