using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Sandbox;

/// <summary>
/// <c>cmp-adapter sandbox</c> as a person runs it: the real executable, nothing configured. The journey ends with
/// links and a working key printed, the printed commands work, and Ctrl-C (SIGINT) stops it with exit code 0.
/// </summary>
public sealed partial class SandboxSmokeTests
{
    [Fact]
    public async Task The_sandbox_completes_the_journey_prints_working_commands_and_stops_cleanly_on_ctrl_c()
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cmp-adapter.dll"), "sandbox", "--port", "0", "--order-timeout", "90"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (stdout) { stdout.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (stderr) { stderr.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string Output() { lock (stdout) { return stdout.ToString(); } }
        try
        {
            await Eventually.TrueAsync(() => Output().Contains("Press Ctrl-C to stop.", StringComparison.Ordinal) || process.HasExited, TimeSpan.FromSeconds(120), "the sandbox journey completes");
            Assert.False(process.HasExited, $"The sandbox exited early with {(process.HasExited ? process.ExitCode : 0)}: {stderr}");
            var output = Output();

            Assert.Matches(@"Sandbox ready: order [0-9a-f-]{36} is done", output);
            var revealLink = Assert.Single(RevealLink().Matches(output)).Value;
            Assert.Equal(5, TryLink().Count(output));
            var chat = ChatCommand().Match(output);
            Assert.True(chat.Success, output);
            var usage = UsageCommand().Match(output);
            Assert.True(usage.Success, output);

            using var client = new HttpClient();
            // The one-time reveal link from the report shows the subscription's first key.
            Assert.Matches("sk_live_[0-9A-Za-z]{46}", await KeyRevealLinks.ShowAsync(revealLink));
            foreach (Match link in TryLink().Matches(output))
            {
                Assert.StartsWith(new Uri(chat.Groups["url"].Value).GetLeftPart(UriPartial.Authority), link.Value, StringComparison.Ordinal);
            }

            // The printed key works: the usage command answers with the seeded credits.
            using var usageRequest = new HttpRequestMessage(HttpMethod.Get, usage.Groups["url"].Value);
            usageRequest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", usage.Groups["key"].Value);
            using var usageResponse = await client.SendAsync(usageRequest);
            Assert.Equal(HttpStatusCode.OK, usageResponse.StatusCode);
            Assert.Equal(1000, JsonNode.Parse(await usageResponse.Content.ReadAsStringAsync())!["balance"]!.GetValue<long>());

            // The printed chat command, sent as curl would send it.
            using var chatRequest = new HttpRequestMessage(HttpMethod.Post, chat.Groups["url"].Value)
            {
                Content = new StringContent(chat.Groups["body"].Value, Encoding.UTF8, "application/json"),
            };
            chatRequest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", chat.Groups["key"].Value);
            Assert.Equal(usage.Groups["key"].Value, chat.Groups["key"].Value);
            using var chatResponse = await client.SendAsync(chatRequest);
            await AssertChatAnsweredAsync(client, new Uri(new Uri(chat.Groups["url"].Value).GetLeftPart(UriPartial.Authority) + "/"), chatResponse);
        }
        finally
        {
            if (!process.HasExited)
            {
                // Ctrl-C: SIGINT to the process, as a terminal sends it.
                using var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
                await kill.WaitForExitAsync();
                Assert.Equal(0, kill.ExitCode);
            }
        }

        using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(exited.Token);
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {stderr}");
        Assert.Contains("Sandbox: stopping.", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The printed chat command's answer. <c>/v1/chat/completions</c> belongs to the chat capability: when the running
    /// adapter's OpenAPI document lists it, the command must be answered from the sample document in the agent's
    /// knowledge base; in a build without it the route must not exist (the key was proven through <c>/v1/usage</c>).
    /// </summary>
    private static async Task AssertChatAnsweredAsync(HttpClient client, Uri server, HttpResponseMessage response)
    {
        var document = await client.GetStringAsync(new Uri(server, "openapi/v1.json"));
        var body = await response.Content.ReadAsStringAsync();
        if (!document.Contains("\"/v1/chat/completions\"", StringComparison.Ordinal))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            return;
        }

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var answer = JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.Contains("refunded within 30 days", answer, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"https?://127\.0\.0\.1:\d+/keys/reveal/\S+")]
    private static partial Regex RevealLink();

    [GeneratedRegex(@"https?://127\.0\.0\.1:\d+/try/[a-z-]+")]
    private static partial Regex TryLink();

    [GeneratedRegex(@"curl -s (?<url>\S+/v1/chat/completions) -H 'Authorization: Bearer (?<key>sk_live_\w+)' -H 'Content-Type: application/json' -d '(?<body>[^']+)'")]
    private static partial Regex ChatCommand();

    [GeneratedRegex(@"curl -s (?<url>\S+/v1/usage) -H 'Authorization: Bearer (?<key>sk_live_\w+)'")]
    private static partial Regex UsageCommand();
}
