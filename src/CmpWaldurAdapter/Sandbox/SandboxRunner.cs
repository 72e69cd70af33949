using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using Microsoft.EntityFrameworkCore;
using Refit;

namespace CmpWaldurAdapter.Sandbox;

/// <summary>What the sandbox is asked for: where it listens and keeps its data.</summary>
public sealed record SandboxOptions(int Port, string? DataDirectory, TimeSpan OrderTimeout);

/// <summary>
/// The product on one machine with nothing installed: SQLite, and in-process emulators of Waldur, Langflow and
/// RAGFlow on loopback. It seeds a buyer organization with credits, registers the catalogue, places an order as
/// the buyer would in HomePort, waits until the adapter has set it done, and prints the links and a working key;
/// then it serves until cancelled.
/// </summary>
public sealed partial class SandboxRunner(TextWriter output, TextWriter error, Action<WebApplicationBuilder>? configureServer = null)
{
    public const string OrderedOffering = "customer-support-agent";
    public const long StartingCredits = 1000;

    public async Task<int> RunAsync(SandboxOptions options, CancellationToken cancellationToken)
    {
        var temporary = options.DataDirectory is null;
        var dataDirectory = options.DataDirectory ?? Path.Combine(Path.GetTempPath(), "cmp-adapter-sandbox-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDirectory);
        await using var waldur = new WaldurEmulator();
        await using var langflow = new LangflowEmulator { NewUserIsActive = false };
        await using var ragflow = new RagflowEmulator();
        try
        {
            await waldur.StartAsync(0, cancellationToken);
            await langflow.StartAsync(0, cancellationToken);
            await ragflow.StartAsync(0, cancellationToken);
            var port = options.Port == 0 ? FreeLoopbackPort() : options.Port;
            var publicUrl = new Uri($"http://127.0.0.1:{port}/");
            var settings = Settings(waldur, langflow, ragflow, dataDirectory, publicUrl);

            await error.WriteLineAsync($"Sandbox: emulated Waldur {waldur.Url}, Langflow {langflow.Url}, RAGFlow {ragflow.Url}; data in {dataDirectory}");
            var offerings = await RegisterCatalogueAsync(settings, cancellationToken);
            for (var i = 0; i < offerings.Count; i++)
            {
                settings[$"Offerings:{i}:Uuid"] = offerings[i].Uuid!.Value.ToString();
                settings[$"Offerings:{i}:Slug"] = offerings[i].Slug;
            }

            await using var app = AdapterHost.BuildServer(["--urls", publicUrl.ToString().TrimEnd('/')], null, builder =>
            {
                builder.Configuration.AddInMemoryCollection(settings);
                configureServer?.Invoke(builder);
            });
            await app.Services.MigrateAsync(cancellationToken);

            // The buyer: an organization with credits and a project, ordering the support agent in "HomePort".
            var customer = Guid.NewGuid();
            var project = Guid.NewGuid();
            await app.Services.GetRequiredService<CreditLedger>().GrantAsync(customer, StartingCredits, "sandbox starting credits", "sandbox-seed", cancellationToken);
            var offering = offerings.Single(o => o.Slug == OrderedOffering).Uuid!.Value;
            var order = waldur.PlaceCreateOrder(offering, new JsonObject { ["name"] = "sandbox agent", ["agent_name"] = "Sandy", ["tone"] = "friendly", ["language"] = "en" }, customer, project);
            var resource = waldur.ResourceOf(order);

            await app.StartAsync(cancellationToken);
            await WaitForDoneAsync(waldur, order, options.OrderTimeout, cancellationToken);

            var key = await PrepareSubscriptionAsync(app.Services, resource, cancellationToken);
            await PrintAsync(waldur, publicUrl, order, resource, key, app.Services.GetRequiredService<OfferingCatalogue>());

            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                await error.WriteLineAsync("Sandbox: stopping.");
            }

            await app.StopAsync(CancellationToken.None);
            return 0;
        }
        finally
        {
            if (temporary)
            {
                TryDelete(dataDirectory);
            }
        }
    }

    private static Dictionary<string, string?> Settings(WaldurEmulator waldur, LangflowEmulator langflow, RagflowEmulator ragflow, string dataDirectory, Uri publicUrl) => new()
    {
        ["Waldur:BaseUrl"] = waldur.Url.ToString(),
        ["Waldur:Token"] = WaldurEmulator.Token,
        ["Database:Provider"] = "Sqlite",
        ["Database:ConnectionString"] = $"Data Source={Path.Combine(dataDirectory, "cmp-adapter.db")}",
        ["Events:Enabled"] = "false",
        ["Orders:PollInterval"] = "00:00:02",
        ["Orders:InboxCheckInterval"] = "00:00:00.500",
        ["Langflow:BaseUrl"] = langflow.Url.ToString(),
        ["Langflow:SuperuserUsername"] = LangflowEmulator.SuperuserUsername,
        ["Langflow:SuperuserPassword"] = LangflowEmulator.SuperuserPassword,
        ["Ragflow:BaseUrl"] = ragflow.Url.ToString(),
        ["Ragflow:ApiKey"] = RagflowEmulator.ApiKey,
        ["Registration:ServiceProviderCustomerUuid"] = waldur.ProviderCustomerUuid.ToString(),
        ["Web:PublicBaseUrl"] = publicUrl.ToString(),
        // The sandbox prints its own story; the adapter's log says only what went wrong.
        ["Serilog:MinimumLevel:Default"] = "Warning",
        // Data Protection warns that the sandbox's throwaway key ring is stored unencrypted; that is the point of it.
        ["Serilog:MinimumLevel:Override:Microsoft.AspNetCore.DataProtection"] = "Error",
    };

    private static async Task<IReadOnlyList<RegisteredOffering>> RegisterCatalogueAsync(Dictionary<string, string?> settings, CancellationToken cancellationToken)
    {
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(settings));
        await host.Services.MigrateAsync(cancellationToken); // demo flow ids are stored
        var entries = host.Services.GetRequiredService<OfferingCatalogue>().Entries.OrderBy(e => e.Slug, StringComparer.Ordinal).ToList();
        return await host.Services.GetRequiredService<OfferingRegistrar>().RegisterAsync(entries, dryRun: false, cancellationToken);
    }

    private static async Task WaitForDoneAsync(WaldurEmulator waldur, Guid order, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var state = waldur.OrderState(order);
            if (state == "done")
            {
                return;
            }

            if (state is "erred" or "rejected" || DateTimeOffset.UtcNow > deadline)
            {
                throw new SandboxException($"The sandbox order {order} ended {state} instead of done: {waldur.Order(order)["error_message"]}");
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>A key for the printed commands, and a sample document in the agent's knowledge base.</summary>
    private static async Task<string> PrepareSubscriptionAsync(IServiceProvider services, Guid resource, CancellationToken cancellationToken)
    {
        await using var db = await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource, cancellationToken);
        var created = await services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "sandbox", cancellationToken);
        if (subscription.RagflowDatasetId is { } dataset)
        {
            var ragflow = services.GetRequiredService<IRagflowApi>();
            var text = """
                Opening hours: our support desk answers from 9:00 to 17:00 on weekdays, Central European Time.

                Refunds: a purchase can be refunded within 30 days; write to the support desk with the order number.

                Shipping: orders leave the warehouse within two working days and arrive in three to five days.
                """;
            var uploaded = await ragflow.UploadDocumentsAsync(dataset, [new StreamPart(new MemoryStream(Encoding.UTF8.GetBytes(text)), "sandbox-handbook.txt", "text/plain")], cancellationToken);
            await ragflow.ParseDocumentsAsync(dataset, new ParseRequest { Document_ids = [.. (uploaded.Data ?? []).Select(d => d.Id)] }, cancellationToken);

            // Recorded as the buyer's own upload would be (listed in the console, its parse followed), but free: a sample.
            var now = DateTimeOffset.UtcNow;
            db.KnowledgeDocuments.AddRange((uploaded.Data ?? []).Select(d => new KnowledgeDocument
            {
                Id = Guid.CreateVersion7(now),
                SubscriptionId = subscription.Id,
                Source = DocumentSource.Upload,
                Name = d.Name ?? "sandbox-handbook.txt",
                RagflowDocumentId = d.Id,
                SizeBytes = Encoding.UTF8.GetByteCount(text),
                Status = ParseStates.Running,
                ChargedAt = now,
                CreatedAt = now,
                UpdatedAt = now,
            }));
            await db.SaveChangesAsync(cancellationToken);
        }

        return created.Plaintext;
    }

    private async Task PrintAsync(WaldurEmulator waldur, Uri publicUrl, Guid order, Guid resource, string key, OfferingCatalogue catalogue)
    {
        var report = waldur.Resource(resource)["report"]?.ToJsonString() ?? string.Empty;
        var links = Links().Matches(Regex.Unescape(report)).Select(m => m.Value.TrimEnd('.', ',', ')'))
            .Where(l => l.StartsWith(publicUrl.ToString(), StringComparison.Ordinal)).Distinct().ToList();
        var chat = new Uri(publicUrl, "v1/chat/completions");
        var body = $$"""{"model": "{{OrderedOffering}}", "messages": [{"role": "user", "content": "When can I get a refund?"}]}""";

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Sandbox ready: order {order} is done; resource {resource} is served by {publicUrl}");
        text.AppendLine("Buyer links (from the report the adapter put in Waldur):");
        foreach (var link in links)
        {
            text.AppendLine("  " + link);
        }

        text.AppendLine("Try pages:");
        foreach (var entry in catalogue.Entries.OrderBy(e => e.Slug, StringComparer.Ordinal))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {new Uri(publicUrl, $"try/{entry.Slug}")}");
        }

        text.AppendLine("Chat with the agent:");
        text.AppendLine(CultureInfo.InvariantCulture, $"  curl -s {chat} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'");
        text.AppendLine("Credits used so far:");
        text.AppendLine(CultureInfo.InvariantCulture, $"  curl -s {new Uri(publicUrl, "v1/usage")} -H 'Authorization: Bearer {key}'");
        text.AppendLine("Press Ctrl-C to stop.");
        await output.WriteAsync(text.ToString());
        await output.FlushAsync();
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open (SQLite on some platforms): the temp folder is cleaned by the OS.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex(@"https?://[^\s""'<>\\]+", RegexOptions.CultureInvariant)]
    private static partial Regex Links();
}

/// <summary>The sandbox could not bring its journey to the end.</summary>
public sealed class SandboxException(string message) : Exception(message);
