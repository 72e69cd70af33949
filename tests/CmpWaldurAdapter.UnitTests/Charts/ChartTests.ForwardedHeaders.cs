using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Contracts;
using YamlDotNet.RepresentationModel;

namespace CmpWaldurAdapter.UnitTests.Charts;

/// <summary>
/// Behind the chart's Ingress the adapter takes the client address from X-Forwarded-For, which must be believed only
/// from the ingress controller: otherwise any pod reaching the Service names its own address and escapes the try
/// page's and widget's per-address limits. There is no helm binary here, so the templates are read as text.
/// </summary>
public sealed partial class ChartTests
{
    [Fact]
    public void The_chart_refuses_to_trust_forwarded_headers_without_proxy_networks()
    {
        var helpers = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/_helpers.tpl"));

        // Trusted: config.Web.TrustForwardedHeaders when set (boolean or string), else on behind the chart's Ingress.
        var trust = Regex.Match(helpers, @"define ""cmp-waldur-adapter\.trustForwardedHeaders"".*?(?=\{\{/\*|\z)", RegexOptions.Singleline).Value;
        Assert.Contains("{{- $setting := .Values.config.Web.TrustForwardedHeaders }}", trust, StringComparison.Ordinal);
        Assert.Matches(@"if or \(kindIs ""invalid"" \$setting\) \(eq \(toString \$setting\) """"\) \}\}\s*\n\{\{- ternary ""true"" ""false"" \(eq \(toString \.Values\.ingress\.enabled\) ""true""\) \}\}", trust);
        Assert.Matches(@"\{\{- else \}\}\s*\n\{\{- ternary ""true"" ""false"" \(eq \(lower \(toString \$setting\)\) ""true""\) \}\}", trust);

        // Trusted with no proxy network: no default that believes every peer; the chart fails with a message.
        var validate = ValidateHelper();
        Assert.Matches(
            @"\{\{- if eq \(include ""cmp-waldur-adapter\.trustForwardedHeaders"" \.\) ""true"" \}\}\s*\n\{\{- if not \.Values\.config\.Web\.ForwardedProxyNetworks \}\}\s*\n\{\{- fail ""config\.Web\.ForwardedProxyNetworks is required when the adapter trusts X-Forwarded-For[^""]*""",
            validate);
        Assert.Matches(@"\{\{- range \.Values\.config\.Web\.ForwardedProxyNetworks \}\}\s*\n\{\{- if not \(regexMatch ""[^""]+/\[0-9\]\{1,3\}\$"" \(toString \.\)\) \}\}\s*\n\{\{- fail", validate);
        Assert.Empty(((YamlSequenceNode)Child(Child(Child(LoadValues(), "config"), "Web"), "ForwardedProxyNetworks")).Children);

        // The networks reach the adapter as Web__ForwardedProxyNetworks__<n>, like every list under config.
        Assert.Contains("{{- include \"cmp-waldur-adapter.flatten\" (dict \"env\" $env \"prefix\" (printf \"%s__%d\" $prefix $index) \"value\" $child) }}", helpers, StringComparison.Ordinal);
        Assert.Contains("{{- include \"cmp-waldur-adapter.flatten\" (dict \"env\" $env \"prefix\" $section \"value\" $tree) }}", helpers, StringComparison.Ordinal);

        // Every example that trusts forwarded headers lists CIDR networks, the adapter's own start check included.
        var examples = Directory.GetFiles(UpstreamSpecs.PathOf($"{Chart}/ci"), "*.yaml").Select(f => (Path.GetFileName(f), (YamlNode)LoadYaml(f))).ToList();
        var readme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));
        var production = new YamlStream();
        production.Load(new StringReader(Regex.Match(readme, @"```yaml\n# my-values\.yaml\n(?<yaml>.*?)```", RegexOptions.Singleline).Groups["yaml"].Value));
        examples.Add(("README.md my-values.yaml", production.Documents[0].RootNode));

        Assert.Contains(examples, e => TrustsForwardedHeaders(e.Item2));
        foreach (var (name, example) in examples.Where(e => TrustsForwardedHeaders(e.Item2)))
        {
            var networks = ((YamlMappingNode)Child(Child(example, "config"), "Web")).Children.TryGetValue(new YamlScalarNode("ForwardedProxyNetworks"), out var list)
                ? ((YamlSequenceNode)list).Children.Cast<YamlScalarNode>().Select(n => n.Value!).ToList()
                : [];
            Assert.True(networks.Count > 0, $"{name} trusts X-Forwarded-For without config.Web.ForwardedProxyNetworks: the chart would refuse it");
            Assert.All(networks, n => Assert.True(System.Net.IPNetwork.TryParse(n, out _), $"{name}: {n} is no CIDR network"));
        }
    }

    [Fact]
    public void The_network_policy_admits_only_the_ingress_controller_to_the_web_port()
    {
        var policy = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/networkpolicy.yaml"));
        Assert.Contains("{{- if .Values.networkPolicy.enabled }}", policy, StringComparison.Ordinal);
        Assert.Matches(@"\{\{- if not \.Values\.networkPolicy\.from \}\}\s*\n\{\{- fail ""networkPolicy\.from must name at least one peer", policy);
        Assert.Contains("kind: NetworkPolicy", policy, StringComparison.Ordinal);

        // The adapter's server pods (as the Deployment labels them), not the migration Job's.
        Assert.Matches(@"podSelector:\s*\n\s*matchLabels:\s*\n\s*\{\{- include ""cmp-waldur-adapter\.selectorLabels"" \. \| nindent 6 \}\}\s*\n\s*app\.kubernetes\.io/component: server", policy);
        Assert.Matches(@"policyTypes:\s*\n\s*- Ingress\s*\n", policy);

        // The web port from networkPolicy.from only; the metrics port from metricsFrom (any peer when empty).
        Assert.Matches(@"- ports:\s*\n\s*- port: http\s*\n\s*protocol: TCP\s*\n\s*from:\s*\n\s*\{\{- toYaml \.Values\.networkPolicy\.from \| nindent 8 \}\}", policy);
        Assert.Matches(@"\{\{- if \.Values\.metricsPort \}\}\s*\n\s*- ports:\s*\n\s*- port: metrics\s*\n\s*protocol: TCP\s*\n\s*\{\{- with \.Values\.networkPolicy\.metricsFrom \}\}\s*\n\s*from:", policy);
        var deployment = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/deployment.yaml"));
        Assert.Matches(@"- name: http\s*\n\s*containerPort:", deployment);
        Assert.Matches(@"- name: metrics\s*\n\s*containerPort:", deployment);

        // Off by default; when on, the ingress-nginx namespace by default.
        var values = (YamlMappingNode)Child(LoadValues(), "networkPolicy");
        Assert.Equal("false", Scalar(values, "enabled"));
        var from = Assert.Single(((YamlSequenceNode)Child(values, "from")).Children);
        Assert.Equal("ingress-nginx", Scalar(Child(Child(from, "namespaceSelector"), "matchLabels"), "kubernetes.io/metadata.name"));
    }

    /// <summary>The chart's trustForwardedHeaders helper for an example's values (values.yaml's defaults: no Ingress, empty setting).</summary>
    private static bool TrustsForwardedHeaders(YamlNode example)
    {
        var map = (YamlMappingNode)example;
        var ingress = map.Children.TryGetValue(new YamlScalarNode("ingress"), out var node)
            && ((YamlMappingNode)node).Children.TryGetValue(new YamlScalarNode("enabled"), out var enabled)
            && ((YamlScalarNode)enabled).Value == "true";
        var web = (YamlMappingNode)Child(Child(example, "config"), "Web");
        return web.Children.TryGetValue(new YamlScalarNode("TrustForwardedHeaders"), out var setting) && ((YamlScalarNode)setting).Value is { Length: > 0 } text
            ? text.Equals("true", StringComparison.OrdinalIgnoreCase)
            : ingress;
    }
}
