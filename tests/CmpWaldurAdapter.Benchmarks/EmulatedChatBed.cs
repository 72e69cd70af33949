using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Knowledge;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// <c>cmp-adapter serve</c> as its own process (so its memory is measured alone) against the product's emulators
/// of Waldur, Langflow and RAGFlow, which run in this process. Each subscriber is ordered in the Waldur emulator
/// and provisioned by the serving adapter itself; keys and credits are made as the CLI makes them (a command
/// host on the same database). The straight path runs each tenant's own flow with its own Langflow key.
/// </summary>
internal sealed class EmulatedChatBed : IAsyncDisposable
{
    public const string Slug = "customer-support-agent";

    private readonly Guid _offering;
    private readonly IHost _commands;
    private readonly Process _adapter;
    private readonly List<string> _adapterOutput = [];

    private EmulatedChatBed(WaldurEmulator waldur, LangflowEmulator langflow, RagflowEmulator ragflow, Guid offering, TestDatabase database, IHost commands, Process adapter, Uri url)
    {
        Waldur = waldur;
        Langflow = langflow;
        Ragflow = ragflow;
        _offering = offering;
        Database = database;
        _commands = commands;
        _adapter = adapter;
        Url = url;
        adapter.OutputDataReceived += (_, line) => Keep(line.Data);
        adapter.ErrorDataReceived += (_, line) => Keep(line.Data);
        adapter.BeginOutputReadLine();
        adapter.BeginErrorReadLine();
    }

    public WaldurEmulator Waldur { get; }

    public LangflowEmulator Langflow { get; }

    public RagflowEmulator Ragflow { get; }

    public TestDatabase Database { get; }

    /// <summary>The serving adapter's address.</summary>
    public Uri Url { get; }

    /// <summary>The adapter process's peak resident set so far (VmHWM), in bytes.</summary>
    public long AdapterPeakResidentBytes
    {
        get
        {
            var line = File.ReadLines($"/proc/{_adapter.Id}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
    }

    public static async Task<EmulatedChatBed> StartAsync(DatabaseProvider provider, Action<Dictionary<string, string?>>? configure = null)
    {
        var waldur = new WaldurEmulator();
        var langflow = new LangflowEmulator();
        var ragflow = new RagflowEmulator();
        await waldur.StartAsync();
        await langflow.StartAsync();
        await ragflow.StartAsync();
        var form = JsonNode.Parse("""
            {
              "order": ["agent_name", "tone", "language"],
              "options": {
                "agent_name": { "type": "string", "label": "Agent name", "required": true },
                "tone": { "type": "select_string", "label": "Tone", "choices": ["friendly", "professional", "concise"], "default": "friendly" },
                "language": { "type": "select_string", "label": "Language", "choices": ["en", "de", "et"], "default": "en" }
              }
            }
            """)!.AsObject();
        var offering = waldur.AddOffering("Customer Support Agent", form, (JsonObject)form.DeepClone());
        var database = await TestDatabase.CreateMigratedAsync(provider);
        var settings = new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = waldur.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
            ["Events:Enabled"] = "false",
            ["Orders:PollInterval"] = "00:00:01",
            ["Orders:InboxCheckInterval"] = "00:00:00.200",
            ["Offerings:0:Uuid"] = offering.ToString(),
            ["Offerings:0:Slug"] = Slug,
            ["Langflow:BaseUrl"] = langflow.Url.ToString(),
            ["Langflow:SuperuserUsername"] = LangflowEmulator.SuperuserUsername,
            ["Langflow:SuperuserPassword"] = LangflowEmulator.SuperuserPassword,
            ["Ragflow:BaseUrl"] = ragflow.Url.ToString(),
            ["Ragflow:ApiKey"] = RagflowEmulator.ApiKey,
            ["Serilog:MinimumLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in database.Settings)
        {
            settings[key] = value;
        }

        configure?.Invoke(settings);

        // What the operator's `cmp-adapter db migrate` does, then `serve` in its own process.
        var commands = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(settings));
        await commands.Services.MigrateAsync(CancellationToken.None);
        var url = new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}/");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "cmp-adapter.dll"), "serve", "--urls", url.ToString().TrimEnd('/') },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in settings)
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var adapter = Process.Start(start) ?? throw new InvalidOperationException("cmp-adapter serve did not start");
        var bed = new EmulatedChatBed(waldur, langflow, ragflow, offering, database, commands, adapter, url);
        await bed.WaitReadyAsync();
        return bed;
    }

    /// <summary>
    /// An organization orders the agent; the serving adapter provisions its tenant on the emulators. Returns the
    /// secret key, and the tenant's Langflow key for the straight path.
    /// </summary>
    public async Task<(Subscription Subscription, string Key, string TenantKey)> SubscribeAsync(long credits)
    {
        var attributes = new JsonObject { ["name"] = "bench agent", ["agent_name"] = "Ada", ["tone"] = "friendly", ["language"] = "en" };
        var order = Waldur.PlaceCreateOrder(_offering, attributes, Guid.NewGuid(), Guid.NewGuid());
        try
        {
            await Eventually.TrueAsync(() => Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"Order {order} is {Waldur.OrderState(order)}, not done; the adapter said:\n" + AdapterOutput());
        }

        var services = _commands.Services;
        var resource = Waldur.ResourceOf(order);
        Subscription subscription;
        Workspace workspace;
        await using (var db = await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource);
            workspace = await db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == subscription.WorkspaceId);
        }

        // One recorded document: every message searches the tenant's dataset, as a subscription with documents does.
        await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().ParsedDocumentAsync(subscription.Id);
        await services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, credits, "bench credits");
        var key = await services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "bench", CancellationToken.None);
        var tenantKey = services.GetRequiredService<UpstreamCredentials>().Unprotect(workspace.LangflowApiKeyCipher!);
        return (subscription, key.Plaintext, tenantKey);
    }

    public string AdapterOutput()
    {
        lock (_adapterOutput)
        {
            return string.Join('\n', _adapterOutput);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_adapter.HasExited)
        {
            _adapter.Kill(entireProcessTree: true);
            await _adapter.WaitForExitAsync();
        }

        _adapter.Dispose();
        _commands.Dispose();
        await Waldur.DisposeAsync();
        await Langflow.DisposeAsync();
        await Ragflow.DisposeAsync();
        await Database.DisposeAsync();
    }

    private async Task WaitReadyAsync()
    {
        using var http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (_adapter.HasExited)
            {
                throw new InvalidOperationException($"cmp-adapter serve exited with {_adapter.ExitCode}:\n{AdapterOutput()}");
            }

            try
            {
                using var ready = await http.GetAsync("readyz");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Still starting.
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("cmp-adapter serve was not ready within 90 s:\n" + AdapterOutput());
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_adapterOutput)
        {
            _adapterOutput.Add(line);
            if (_adapterOutput.Count > 200)
            {
                _adapterOutput.RemoveAt(0);
            }
        }
    }
}
