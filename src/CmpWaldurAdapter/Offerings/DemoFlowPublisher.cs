using System.Net;
using System.Security.Cryptography;
using System.Text;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using Microsoft.EntityFrameworkCore;
using Refit;

namespace CmpWaldurAdapter.Offerings;

/// <summary>
/// Publishes each offering's shared demo flow (the catalogue's <c>demo_flow</c>) on Langflow under one dedicated
/// demo user, <c>cmp-demo</c>, and stores the flow id for the try page. Idempotent: the flow is found by its
/// name, and changed only when the demo file's graph changed. A no-op when Langflow is not configured.
/// </summary>
public sealed class DemoFlowPublisher(IServiceProvider services, IDbContextFactory<AdapterDbContext> dbs, OfferingCatalogue catalogue, TimeProvider clock, ILogger<DemoFlowPublisher> logger)
{
    /// <summary>The demo user. Not <c>cmp-&lt;hex&gt;</c>, so reconciliation never takes it for an orphaned tenant.</summary>
    public const string DemoUsername = "cmp-demo";
    private const int UserPageSize = 100;

    private LangflowCredential? _key;

    /// <summary>Whether demo flows are published (Langflow is configured).</summary>
    public bool Enabled => services.GetServices<ITenantProvisioner>().OfType<LangflowRagflowProvisioner>().Any();

    /// <summary>The Langflow name of an offering's demo flow.</summary>
    public static string FlowName(string slug) => $"{DemoUsername} {slug}";

    /// <summary>
    /// Reads and checks the entry's demo flow (with Langflow configured) without publishing it: registration does this
    /// before Waldur is asked anything, so a missing or broken file never leaves a live offering without its demo.
    /// </summary>
    /// <exception cref="FlowTemplateException">The demo flow cannot be read or is not a valid flow template.</exception>
    public void Check(CatalogueEntry entry)
    {
        if (Enabled)
        {
            FlowTemplates.Read(catalogue.PathOf(entry.DemoFlow));
        }
    }

    /// <summary>Makes Langflow hold the entry's demo flow; returns what changed (or would) and the flow id.</summary>
    public async Task<(IReadOnlyList<string> Changes, string? FlowId)> PublishAsync(CatalogueEntry entry, bool dryRun, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return ([], null);
        }

        var langflow = services.GetRequiredService<ILangflowApi>();
        var changes = new List<string>();
        var template = FlowTemplates.Read(catalogue.PathOf(entry.DemoFlow));
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(template.Data.ToJsonString())));
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var stored = await db.DemoFlows.SingleOrDefaultAsync(d => d.Slug == entry.Slug, cancellationToken);

        var key = await DemoKeyAsync(db, dryRun, changes, cancellationToken);
        var name = FlowName(entry.Slug);
        var existing = key is null ? null : (await langflow.ListFlowHeadersAsync(key, cancellationToken) ?? []).FirstOrDefault(f => f.Name == name);
        string? flowId = existing?.Id.ToString();
        if (existing is null)
        {
            changes.Add("create demo flow");
            if (!dryRun)
            {
                var created = await langflow.CreateFlowAsync(new FlowCreate
                {
                    Name = name,
                    Description = template.Description,
                    Data = template.Data,
                    Access_type = AccessTypeEnum.PRIVATE,
                    Mcp_enabled = false,
                    Is_component = false,
                    Webhook = false,
                }, key!, cancellationToken);
                flowId = created.Id.ToString();
                logger.LogInformation("Published demo flow {LangflowFlowId} of offering {Slug}", flowId, entry.Slug);
            }
        }
        else if (stored is null || stored.ContentHash != hash || stored.LangflowFlowId != flowId)
        {
            changes.Add("update demo flow");
            if (!dryRun)
            {
                await langflow.UpdateFlowAsync(existing.Id, new FlowUpdate { Description = template.Description, Data = template.Data }, key!, cancellationToken);
            }
        }

        if (!dryRun && flowId is not null && (stored is null || stored.ContentHash != hash || stored.LangflowFlowId != flowId))
        {
            if (stored is null)
            {
                stored = new DemoFlow { Slug = entry.Slug };
                db.DemoFlows.Add(stored);
            }

            stored.LangflowFlowId = flowId;
            stored.ContentHash = hash;
            stored.UpdatedAt = clock.GetUtcNow();
            await db.SaveChangesAsync(cancellationToken);
        }

        return (changes, flowId ?? stored?.LangflowFlowId);
    }

    /// <summary>The demo user's API key: the stored one if it still works, else a (new) user and a fresh key.</summary>
    private async Task<LangflowCredential?> DemoKeyAsync(AdapterDbContext db, bool dryRun, List<string> changes, CancellationToken cancellationToken)
    {
        if (_key is not null)
        {
            return _key;
        }

        var langflow = services.GetRequiredService<ILangflowApi>();
        var credentials = services.GetRequiredService<UpstreamCredentials>();
        var runtime = await db.DemoRuntimes.SingleOrDefaultAsync(r => r.Username == DemoUsername, cancellationToken);
        if (runtime?.ApiKeyCipher is { } cipher)
        {
            var stored = LangflowCredential.FromApiKey(credentials.Unprotect(cipher));
            try
            {
                await langflow.ListFlowHeadersAsync(stored, cancellationToken);
                return _key = stored;
            }
            catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                // The user or its key was removed: make them again below.
            }
        }

        var superuser = services.GetRequiredService<LangflowSuperuser>();
        var user = await FindUserAsync(langflow, superuser, cancellationToken);
        changes.Add(user is null ? "create demo user" : "renew demo user key");
        if (dryRun)
        {
            return null;
        }

        var password = UpstreamCredentials.NewPassword();
        if (user is null)
        {
            user = await superuser.CallAsync(su => langflow.CreateUserAsync(new UserCreate { Username = DemoUsername, Password = password }, su, cancellationToken), cancellationToken);
        }

        var userId = user.Id ?? throw new InvalidOperationException("Langflow returned the demo user without an id.");
        await superuser.CallAsync(su => langflow.UpdateUserAsync(userId, new UserUpdate { Password = password, Is_active = true }, su, cancellationToken), cancellationToken);
        var token = await langflow.LoginAsync(LangflowSuperuser.LoginForm(DemoUsername, password), cancellationToken);
        var session = LangflowCredential.FromToken(token.Access_token);
        var created = await langflow.CreateApiKeyAsync(new ApiKeyCreate { Name = DemoUsername }, session, cancellationToken);
        foreach (var old in (await langflow.ListApiKeysAsync(session, cancellationToken)).Api_keys.Where(k => k.Name == DemoUsername && k.Id != created.Id))
        {
            await langflow.DeleteApiKeyAsync(old.Id, session, cancellationToken);
        }

        if (runtime is null)
        {
            runtime = new DemoRuntime { Username = DemoUsername };
            db.DemoRuntimes.Add(runtime);
        }

        runtime.LangflowUserId = userId.ToString();
        runtime.PasswordCipher = credentials.Protect(password);
        runtime.ApiKeyId = created.Id.ToString();
        runtime.ApiKeyCipher = credentials.Protect(created.Api_key);
        runtime.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        logger.LogInformation("Langflow demo user {LangflowUsername} ({LangflowUserId}) is ready", DemoUsername, userId);
        return _key = LangflowCredential.FromApiKey(created.Api_key);
    }

    private static async Task<UserRead?> FindUserAsync(ILangflowApi langflow, LangflowSuperuser superuser, CancellationToken cancellationToken)
    {
        for (var skip = 0; ; skip += UserPageSize)
        {
            var page = await superuser.CallAsync(su => langflow.ListUsersAsync(skip, UserPageSize, su, cancellationToken), cancellationToken);
            if (page.Users.FirstOrDefault(u => u.Username == DemoUsername) is { } user)
            {
                return user;
            }

            if (page.Users.Count < UserPageSize || skip + UserPageSize >= page.Total_count)
            {
                return null;
            }
        }
    }
}
