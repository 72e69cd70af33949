using System.Text.RegularExpressions;
using System.Xml.Linq;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Testing.Contracts;
using YamlDotNet.RepresentationModel;

namespace CmpWaldurAdapter.UnitTests.Charts;

/// <summary>
/// Operations the chart must get right beyond agreeing with the options: buyer links with the real address, rollouts that
/// let requests finish, a SQLite claim that survives <c>helm uninstall</c>, upgrade and image instructions that work.
/// There is no helm binary here, so the templates are read as text, as the other chart checks do.
/// </summary>
public sealed partial class ChartTests
{
    [Fact]
    public void The_chart_refuses_to_render_without_the_public_base_url_and_every_example_sets_it()
    {
        var validate = ValidateHelper();
        Assert.Matches(@"\{\{- if not \.Values\.config\.Web\.PublicBaseUrl \}\}\s*\n\{\{- fail ""config\.Web\.PublicBaseUrl is required[^""]*localhost", validate);

        foreach (var file in Directory.GetFiles(UpstreamSpecs.PathOf($"{Chart}/ci"), "*.yaml"))
        {
            var web = Child(Child(LoadYaml(file), "config"), "Web");
            Assert.Matches(@"^https://", Scalar(web, "PublicBaseUrl"));
        }

        var readme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));
        var production = Regex.Match(readme, @"```yaml\n# my-values\.yaml\n(?<yaml>.*?)```", RegexOptions.Singleline);
        Assert.True(production.Success, "the chart README has no my-values.yaml example");
        var example = new YamlStream();
        example.Load(new StringReader(production.Groups["yaml"].Value));
        Assert.Matches(@"^https://", Scalar(Child(Child(example.Documents[0].RootNode, "config"), "Web"), "PublicBaseUrl"));
        Assert.Matches(@"helm install adapter charts/cmp-waldur-adapter \\\n(?:  --set [^\n]*\\\n)*  --set config\.Web\.PublicBaseUrl=https://", readme);
    }

    [Fact]
    public void A_stopping_pod_drains_and_gets_longer_than_the_adapter_waits_for_its_requests()
    {
        var values = LoadValues();
        var preStop = int.Parse(Scalar(values, "preStopSleepSeconds"), System.Globalization.CultureInfo.InvariantCulture);
        var grace = int.Parse(Scalar(values, "terminationGracePeriodSeconds"), System.Globalization.CultureInfo.InvariantCulture);
        var shutdown = (int)new HostingOptions().ShutdownTimeout.TotalSeconds;

        // Endpoints are removed while the pod still serves; then the adapter waits for its requests (an agent run).
        Assert.InRange(preStop, 5, 15);
        Assert.True(new HostingOptions().ShutdownTimeout > new CmpWaldurAdapter.Chat.ChatOptions().RunTimeout, "Hosting:ShutdownTimeout outlasts Chat:RunTimeout");
        Assert.True(grace > shutdown + preStop, $"terminationGracePeriodSeconds {grace} must exceed the shutdown timeout {shutdown} s plus the preStop pause {preStop} s");

        // The native sleep action (no sleep binary needed in the image) from Kubernetes 1.30, exec sleep before.
        var deployment = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/deployment.yaml"));
        Assert.Matches(@"\{\{- if \.Values\.preStopSleepSeconds \}\}\s*\n(?:\s*#[^\n]*\n)*\s*lifecycle:\s*\n\s*preStop:\s*\n\s*\{\{- if semverCompare "">=1\.30\.0-0"" \.Capabilities\.KubeVersion\.Version \}\}\s*\n\s*sleep:\s*\n\s*seconds: \{\{ \.Values\.preStopSleepSeconds \}\}\s*\n\s*\{\{- else \}\}\s*\n(?:\s*#[^\n]*\n)*\s*exec:\s*\n\s*command: \[""sleep"", ""\{\{ \.Values\.preStopSleepSeconds \}\}""\]", deployment);
        Assert.Contains("terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}", deployment, StringComparison.Ordinal);

        // The chart refuses a grace period the adapter would outlive; with config.Hosting.ShutdownTimeout empty it counts
        // the adapter's own default, which must be the one the chart assumes.
        var helpers = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/_helpers.tpl"));
        var seconds = Regex.Match(helpers, @"define ""cmp-waldur-adapter\.shutdownTimeoutSeconds"" -\}\}.*?\{\{- if not \$value \}\}(?<default>\d+)", RegexOptions.Singleline);
        Assert.True(seconds.Success, "_helpers.tpl has no shutdownTimeoutSeconds helper with a default");
        Assert.Equal(shutdown.ToString(System.Globalization.CultureInfo.InvariantCulture), seconds.Groups["default"].Value);
        Assert.Matches(@"if le \(int \.Values\.terminationGracePeriodSeconds\) \(add \$shutdown \$preStop\) \}\}\s*\n\{\{- fail", ValidateHelper());
        Assert.Contains("\"Hosting\" \"ShutdownTimeout\"", helpers, StringComparison.Ordinal);
    }

    [Fact]
    public void The_sqlite_claim_survives_helm_uninstall_and_the_readme_says_how_to_delete_it()
    {
        var pvc = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/pvc.yaml"));
        Assert.Matches(@"metadata:\s*\n(?:\s+[^\n]*\n)*?\s+annotations:\s*\n\s+helm\.sh/resource-policy: keep\n", pvc);

        var readme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));
        Assert.Contains("helm.sh/resource-policy: keep", readme, StringComparison.Ordinal);
        Assert.Matches(@"kubectl [^\n`]*delete pvc <fullname>-data", readme);
    }

    [Fact]
    public void Manual_migration_runs_the_new_image_not_the_old_pods()
    {
        var readme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));

        // kubectl exec into the running Deployment runs the old image, which does not know the new migrations.
        Assert.DoesNotMatch(@"exec deploy/[^\n]*db migrate", readme);
        var job = Regex.Match(readme, @"kubectl [^\n]*apply -f - <<'EOF'\n(?<yaml>.*?)\nEOF\n", RegexOptions.Singleline);
        Assert.True(job.Success, "the chart README has no one-off migration Job");
        var manifest = new YamlStream();
        manifest.Load(new StringReader(job.Groups["yaml"].Value));
        Assert.Equal("Job", Scalar(manifest.Documents[0].RootNode, "kind"));
        var container = ((YamlSequenceNode)Child(Child(Child(Child(manifest.Documents[0].RootNode, "spec"), "template"), "spec"), "containers")).Children.Single();
        Assert.EndsWith(":<new tag>", Scalar(container, "image"), StringComparison.Ordinal);
        Assert.Equal(["db", "migrate"], ((YamlSequenceNode)Child(container, "args")).Children.Cast<YamlScalarNode>().Select(a => a.Value!));
        Assert.Matches(@"/readyz[^.]*pending migrations", readme);
    }

    [Fact]
    public void The_notes_warn_when_no_agent_runtime_is_configured()
    {
        var notes = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/NOTES.txt"));

        Assert.Matches(@"\{\{- if not \.Values\.config\.Langflow\.BaseUrl \}\}\s*\n\s*\nWARNING: config\.Langflow\.BaseUrl is empty[^{]*record-only", notes);
    }

    [Fact]
    public void The_image_build_is_documented_and_commands_use_the_images_executable_path()
    {
        // dotnet publish -t:PublishContainer names the image after the assembly and, told to, tags it with the version
        // (the SDK's own default tag is latest): the chart's default image (the appVersion is checked against the version).
        var project = XDocument.Load(UpstreamSpecs.PathOf("src/CmpWaldurAdapter/CmpWaldurAdapter.csproj"));
        Assert.Equal(Scalar(Child(LoadValues(), "image"), "repository"), project.Descendants("AssemblyName").Single().Value);
        Assert.Empty(project.Descendants("ContainerRepository"));
        Assert.Equal("$(Version)", project.Descendants("ContainerImageTag").Single().Value);

        var chartReadme = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/README.md"));
        var readme = File.ReadAllText(UpstreamSpecs.PathOf("README.md"));
        foreach (var text in new[] { chartReadme, readme })
        {
            Assert.Contains("dotnet publish src/CmpWaldurAdapter -c Release --os linux --arch x64 -t:PublishContainer", text, StringComparison.Ordinal);
        }

        // The image holds the executable as /app/cmp-adapter, and /app is not on the PATH: `kubectl exec` must name it in full.
        var values = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/values.yaml"));
        Assert.Contains("[\"/app/cmp-adapter\"]", values, StringComparison.Ordinal);
        var texts = new Dictionary<string, string>
        {
            ["README.md"] = readme,
            [$"{Chart}/README.md"] = chartReadme,
            ["NOTES.txt"] = File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/NOTES.txt")),
        };
        var execs = texts.SelectMany(t => Regex.Matches(t.Value, @"kubectl [^\n`]*exec [^\n`]*-- (?<command>\S+)").Select(m => (File: t.Key, Command: m.Groups["command"].Value))).ToList();
        Assert.Contains(execs, e => e.File == "NOTES.txt");
        Assert.All(execs, e => Assert.True(e.Command == "/app/cmp-adapter", $"{e.File}: kubectl exec runs {e.Command}, not /app/cmp-adapter"));
    }

    private static string ValidateHelper() =>
        Regex.Match(File.ReadAllText(UpstreamSpecs.PathOf($"{Chart}/templates/_helpers.tpl")), @"define ""cmp-waldur-adapter\.validate"".*?(?=\{\{/\*|\z)", RegexOptions.Singleline).Value;
}
