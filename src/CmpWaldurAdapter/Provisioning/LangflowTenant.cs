using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Refit;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// The Langflow side of a tenant. The superuser only manages users; everything inside a tenant runs with
/// that tenant's own API key, so Langflow's per-user scoping is a second wall between buyers.
/// </summary>
public sealed class LangflowTenant(
    ILangflowApi langflow,
    LangflowSuperuser superuser,
    UpstreamCredentials credentials,
    FlowTemplates templates,
    OfferingCatalogue catalogue,
    ServedOfferings offerings,
    ILogger<LangflowTenant> logger)
{
    private const int UserPageSize = 100;

    // ---- Create ----------------------------------------------------------------------------------------

    /// <summary>
    /// <c>langflow-user</c>: the project's user exists, is active, and the adapter holds a password that logs in.
    /// A user whose password does not work (lost in a crash between creating the user and saving, or reset by a
    /// concurrent order of the same project) gets a fresh one from the superuser.
    /// </summary>
    public async Task EnsureUserAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var workspace = context.Workspace;
        var username = TenantNames.LangflowUsername(workspace.Id);
        if (await CanLogInAsync(workspace, cancellationToken))
        {
            // The project's earlier subscription made it, and it works: nothing to change.
            context.Note("Your project has its own private agent runtime.");
            return;
        }

        var password = UpstreamCredentials.NewPassword();
        var user = await FindUserAsync(username, cancellationToken);
        var created = false;
        if (user is null)
        {
            try
            {
                user = Answered(await superuser.CallAsync(su => langflow.CreateUserAsync(new UserCreate { Username = username, Password = password }, su, cancellationToken), cancellationToken));
                created = true;
                logger.LogInformation("Created Langflow user {LangflowUsername} ({LangflowUserId}) for project {ProjectUuid}", username, user.Id, workspace.Id);
            }
            catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.BadRequest)
            {
                // "This username is unavailable": another order of the same project created it meanwhile.
                var raced = await FindUserAsync(username, cancellationToken);
                if (raced is null)
                {
                    throw;
                }

                user = raced;
            }
        }

        var userId = user.Id ?? throw new TransientProvisioningException("Langflow returned a user without an id.");
        if (!created)
        {
            user = Answered(await superuser.CallAsync(su => langflow.UpdateUserAsync(userId, new UserUpdate { Password = password, Is_active = true }, su, cancellationToken), cancellationToken));
            logger.LogInformation("Set a new password for Langflow user {LangflowUsername}: the stored one did not log in", username);
        }
        else if (!user.Is_active)
        {
            // New users are inactive until a superuser activates them (LANGFLOW_NEW_USER_IS_ACTIVE=false).
            user = Answered(await superuser.CallAsync(su => langflow.UpdateUserAsync(userId, new UserUpdate { Is_active = true }, su, cancellationToken), cancellationToken));
        }

        if (workspace.LangflowUserId != userId.ToString())
        {
            // A different (new) user: any key stored for the old one is worthless.
            workspace.LangflowApiKeyId = null;
            workspace.LangflowApiKeyCipher = null;
        }

        workspace.LangflowUserId = userId.ToString();
        workspace.LangflowUsername = username;
        workspace.LangflowPasswordCipher = credentials.Protect(password);
        context.Note("Your project has its own private agent runtime.");
    }

    /// <summary>
    /// <c>langflow-user-key</c>: the user logs in once and creates its own API key (Langflow mints keys only for
    /// the caller). A key whose secret was lost (a crash before saving) is removed later, by
    /// <see cref="RemoveUnstoredKeysAsync"/>, once this one is stored.
    /// </summary>
    public async Task EnsureUserKeyAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var workspace = context.Workspace;
        if (workspace.LangflowApiKeyId is not null && workspace.LangflowApiKeyCipher is not null)
        {
            return; // The project's earlier subscription minted it.
        }

        var session = await LoginAsTenantAsync(workspace, cancellationToken);
        var key = Answered(await langflow.CreateApiKeyAsync(new ApiKeyCreate { Name = TenantNames.ApiKeyName }, session, cancellationToken));
        workspace.LangflowApiKeyId = key.Id.ToString();
        workspace.LangflowApiKeyCipher = credentials.Protect(key.Api_key);
        logger.LogInformation("Created the API key of Langflow user {LangflowUsername}", workspace.LangflowUsername);
    }

    /// <summary><c>langflow-project</c>: the subscription's own Langflow project inside the tenant user.</summary>
    public async Task EnsureProjectAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var key = await LiveTenantKeyAsync(context, cancellationToken);
        var subscription = context.Subscription;
        var name = TenantNames.LangflowProject(subscription.ResourceUuid);
        var projects = Answered(await langflow.ListProjectsAsync(key, cancellationToken));
        var project = projects.FirstOrDefault(p => p.Name == name);
        if (project is null)
        {
            var created = Answered(await langflow.CreateProjectAsync(new FolderCreate { Name = name, Description = $"Waldur resource {subscription.ResourceUuid}" }, key, cancellationToken));
            if (created.Name == name)
            {
                project = created;
            }
            else
            {
                // Renamed to "name (1)": ours appeared meanwhile. Keep the original, drop the twin just made.
                await IgnoreMissingAsync(() => langflow.DeleteProjectAsync(created.Id, key, cancellationToken));
                projects = Answered(await langflow.ListProjectsAsync(key, cancellationToken));
                project = projects.FirstOrDefault(p => p.Name == name)
                    ?? throw new TransientProvisioningException($"Langflow renamed project {name} to {created.Name}, but no project has the name.");
            }

            logger.LogInformation("Langflow project {LangflowProjectId} holds subscription {SubscriptionId}", project.Id, subscription.Id);
        }

        foreach (var twin in projects.Where(p => p.Id != project.Id && TenantNames.IsLangflowTwin(p.Name, name)))
        {
            logger.LogWarning("Deleting Langflow project {LangflowProjectId} ({Name}), a renamed twin of {Expected}", twin.Id, twin.Name, name);
            await IgnoreMissingAsync(() => langflow.DeleteProjectAsync(twin.Id, key, cancellationToken));
        }

        subscription.LangflowProjectId = project.Id.ToString();
    }

    /// <summary>
    /// The tenant's key, with every other key of the user removed. A key Langflow refuses means the user or its key
    /// went after the user steps checked them: the project's last other subscription was terminated in between and
    /// took the user with it (or an administrator deleted the key). The user and key are made again, not given up on.
    /// </summary>
    private async Task<LangflowCredential> LiveTenantKeyAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var workspace = context.Workspace;
        try
        {
            var key = TenantKey(workspace);
            await RemoveUnstoredKeysAsync(workspace, key, cancellationToken);
            return key;
        }
        catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            logger.LogWarning("Langflow refused the key of user {LangflowUsername} of project {ProjectUuid}; making the user and key again", workspace.LangflowUsername, workspace.Id);
            workspace.LangflowApiKeyId = null;
            workspace.LangflowApiKeyCipher = null;
            await EnsureUserAsync(context, cancellationToken);
            await EnsureUserKeyAsync(context, cancellationToken);
            var key = TenantKey(workspace);
            await RemoveUnstoredKeysAsync(workspace, key, cancellationToken);
            return key;
        }
    }

    /// <summary><c>langflow-flow</c>: the subscription's flow, cloned from the offering's template with the buyer's settings.</summary>
    public async Task EnsureFlowAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        // As in the project step: a key refused since then is made again rather than erring the order as the operator's fault.
        var key = await LiveTenantKeyAsync(context, cancellationToken);
        var subscription = context.Subscription;
        var projectId = Guid.Parse(subscription.LangflowProjectId ?? throw new InvalidOperationException("The Langflow project step has not run."));
        var entry = Entry(subscription);
        var name = TenantNames.Flow(entry.Name, subscription.ResourceUuid);
        var flows = Answered(await langflow.ListFlowHeadersAsync(key, cancellationToken));
        var flow = flows.FirstOrDefault(f => f.Name == name);
        Guid flowId;
        if (flow is not null)
        {
            flowId = flow.Id;
        }
        else
        {
            var template = templates.For(entry);
            var created = Answered(await langflow.CreateFlowAsync(
                new FlowCreate
                {
                    Name = name,
                    Description = template.Description,
                    Data = FlowTemplates.Build(template, context.Configuration),
                    Folder_id = projectId,
                    Access_type = AccessTypeEnum.PRIVATE,
                    Mcp_enabled = false,
                    Is_component = false,
                    Webhook = false,
                },
                key,
                cancellationToken));
            if (created.Name == name)
            {
                flowId = created.Id;
            }
            else
            {
                await IgnoreMissingAsync(() => langflow.DeleteFlowAsync(created.Id, key, cancellationToken));
                flows = Answered(await langflow.ListFlowHeadersAsync(key, cancellationToken));
                flowId = flows.FirstOrDefault(f => f.Name == name)?.Id
                    ?? throw new TransientProvisioningException($"Langflow renamed flow {name} to {created.Name}, but no flow has the name.");
            }

            logger.LogInformation("Langflow flow {LangflowFlowId} serves subscription {SubscriptionId}", flowId, subscription.Id);
        }

        foreach (var twin in flows.Where(f => f.Id != flowId && TenantNames.IsFlowOf(f.Name, subscription.ResourceUuid)))
        {
            logger.LogWarning("Deleting Langflow flow {LangflowFlowId} ({Name}), a renamed twin of {Expected}", twin.Id, twin.Name, name);
            await IgnoreMissingAsync(() => langflow.DeleteFlowAsync(twin.Id, key, cancellationToken));
        }

        subscription.LangflowFlowId = flowId.ToString();
        context.Note($"Your agent is set up from the {entry.Name} template with your settings.");
    }

    // ---- Update ----------------------------------------------------------------------------------------

    /// <summary>
    /// <c>langflow-flow-config</c>: the flow's prompt follows the new settings. Only settings the prompt names
    /// change the flow; the rest live in the stored configuration, which the order pipeline already updated.
    /// </summary>
    public async Task ApplyConfigurationAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var subscription = context.Subscription;
        if (subscription.LangflowFlowId is not { } flowText || context.Workspace.LangflowApiKeyCipher is null)
        {
            context.Note("Your new settings were saved.");
            return;
        }

        var key = TenantKey(context.Workspace);
        var flowId = Guid.Parse(flowText);
        var desired = FlowTemplates.Build(templates.For(Entry(subscription)), context.Configuration);
        var current = Answered(await langflow.GetFlowAsync(flowId, key, cancellationToken));
        if (FlowTemplates.PromptDiffers(current.Data, desired))
        {
            await langflow.UpdateFlowAsync(flowId, new FlowUpdate { Data = desired }, key, cancellationToken);
            logger.LogInformation("Updated Langflow flow {LangflowFlowId} to configuration version {ConfigurationVersion}", flowId, subscription.ConfigurationVersion);
            context.Note("Your agent was updated with your new settings.");
        }
        else
        {
            context.Note("Your new settings were saved.");
        }
    }

    // ---- Terminate -------------------------------------------------------------------------------------

    /// <summary><c>langflow-flow-delete</c>: the recorded flow and any flow named for this resource ("already gone" is fine).</summary>
    public async Task DeleteFlowAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var subscription = context.Subscription;
        await AsTenantAsync(context.Workspace, async credential =>
        {
            var targets = Answered(await langflow.ListFlowHeadersAsync(credential, cancellationToken))
                .Where(f => TenantNames.IsFlowOf(f.Name, subscription.ResourceUuid)).Select(f => f.Id).ToHashSet();
            if (Guid.TryParse(subscription.LangflowFlowId, out var recorded))
            {
                targets.Add(recorded);
            }

            foreach (var flowId in targets)
            {
                await IgnoreMissingAsync(() => langflow.DeleteFlowAsync(flowId, credential, cancellationToken));
                logger.LogInformation("Deleted Langflow flow {LangflowFlowId} of subscription {SubscriptionId}", flowId, subscription.Id);
            }
        }, cancellationToken);

        subscription.LangflowFlowId = null;
        context.Note("The agent, with its conversation history.");
    }

    /// <summary><c>langflow-project-delete</c>: the recorded project and any project named for this resource.</summary>
    public async Task DeleteProjectAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var subscription = context.Subscription;
        await AsTenantAsync(context.Workspace, async credential =>
        {
            var name = TenantNames.LangflowProject(subscription.ResourceUuid);
            var targets = Answered(await langflow.ListProjectsAsync(credential, cancellationToken))
                .Where(p => p.Name == name || TenantNames.IsLangflowTwin(p.Name, name)).Select(p => p.Id).ToHashSet();
            if (Guid.TryParse(subscription.LangflowProjectId, out var recorded))
            {
                targets.Add(recorded);
            }

            foreach (var projectId in targets)
            {
                await IgnoreMissingAsync(() => langflow.DeleteProjectAsync(projectId, credential, cancellationToken));
                logger.LogInformation("Deleted Langflow project {LangflowProjectId} of subscription {SubscriptionId}", projectId, subscription.Id);
            }
        }, cancellationToken);

        subscription.LangflowProjectId = null;
        context.Note("The agent's private workspace.");
    }

    /// <summary>
    /// <c>langflow-user-delete-if-last</c>: when no other subscription of the Waldur project still needs it, its
    /// Langflow user is deleted and forgotten, every flow it still holds first (see <see cref="DeleteUserAsync"/>): a
    /// subscription Waldur erased earlier was marked terminated with its flow left behind. A subscription being
    /// terminated whose flow and project are already gone needs it no more: two last subscriptions terminated at once
    /// would otherwise each wait for the other, and the user and its key would stay on the shared server for good.
    /// </summary>
    public async Task DeleteUserIfLastAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var workspace = context.Workspace;
        var subscription = context.Subscription;
        var othersAlive = await context.Db.Subscriptions
            .AnyAsync(s => s.WorkspaceId == workspace.Id && s.Id != subscription.Id && s.State != SubscriptionState.Terminated
                && !(s.State == SubscriptionState.Terminating && s.LangflowFlowId == null && s.LangflowProjectId == null), cancellationToken);
        if (othersAlive)
        {
            return;
        }

        var username = TenantNames.LangflowUsername(workspace.Id);
        var userId = Guid.TryParse(workspace.LangflowUserId, out var recorded) ? recorded : (await FindUserAsync(username, cancellationToken))?.Id;
        if (userId is { } id)
        {
            await DeleteUserAsync(workspace, id, username, cancellationToken);
            logger.LogInformation("Deleted Langflow user {LangflowUsername} ({LangflowUserId}): project {ProjectUuid} has no subscription left", username, id, workspace.Id);
            context.Note("Your project's private agent runtime (no other agent of the project uses it).");
        }

        workspace.LangflowUserId = null;
        workspace.LangflowUsername = null;
        workspace.LangflowPasswordCipher = null;
        workspace.LangflowApiKeyId = null;
        workspace.LangflowApiKeyCipher = null;
    }

    /// <summary>
    /// Deletes a tenant user with everything it owns. Langflow's user delete takes the user's keys, variables and
    /// projects, but not its flows: those (the agent's prompt and settings) and their chat messages would stay on the
    /// shared server, owned by no one, and once the user and its key are gone nothing can find them any more. So the
    /// tenant deletes its own flows first (a flow's delete takes its messages) and its projects; the user goes only
    /// once that worked (a failure throws, and the caller tries again later). The tenant is reached with the stored
    /// key or login when <paramref name="workspace"/> records this user, otherwise with a password the superuser
    /// sets. A user already gone is left at that.
    /// </summary>
    public async Task DeleteUserAsync(Workspace? workspace, Guid userId, string username, CancellationToken cancellationToken)
    {
        var emptied = workspace is not null && workspace.LangflowUserId == userId.ToString()
            && await AsTenantAsync(workspace, credential => DeleteContentsAsync(credential, username, cancellationToken), cancellationToken);
        if (!emptied)
        {
            if (await LoginWithFreshPasswordAsync(userId, username, cancellationToken) is not { } login)
            {
                logger.LogInformation("Langflow user {LangflowUsername} ({LangflowUserId}) is gone already", username, userId);
                return;
            }

            await DeleteContentsAsync(login, username, cancellationToken);
        }

        await superuser.CallAsync(su => IgnoreMissingAsync(() => langflow.DeleteUserAsync(userId, su, cancellationToken)), cancellationToken);
    }

    /// <summary>Every flow of the caller, then its projects (the user's delete would take those too, so one refused is left to it).</summary>
    private async Task DeleteContentsAsync(LangflowCredential credential, string username, CancellationToken cancellationToken)
    {
        foreach (var flow in Answered(await langflow.ListFlowHeadersAsync(credential, cancellationToken)))
        {
            await IgnoreMissingAsync(() => langflow.DeleteFlowAsync(flow.Id, credential, cancellationToken));
            logger.LogInformation("Deleted Langflow flow {LangflowFlowId} ({Name}) of user {LangflowUsername}, with its conversation history", flow.Id, flow.Name, username);
        }

        foreach (var project in Answered(await langflow.ListProjectsAsync(credential, cancellationToken)))
        {
            try
            {
                await IgnoreMissingAsync(() => langflow.DeleteProjectAsync(project.Id, credential, cancellationToken));
            }
            catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.BadRequest)
            {
                logger.LogWarning("Langflow refused to delete project {LangflowProjectId} ({Name}) of user {LangflowUsername}; the user's delete takes it", project.Id, project.Name, username);
            }
        }
    }

    /// <summary>
    /// A login as a user the adapter holds no working credentials for (its records were cleared, or lost): the
    /// superuser sets a fresh password first. Null when the user is gone.
    /// </summary>
    private async Task<LangflowCredential?> LoginWithFreshPasswordAsync(Guid userId, string username, CancellationToken cancellationToken)
    {
        var password = UpstreamCredentials.NewPassword();
        try
        {
            await superuser.CallAsync(su => langflow.UpdateUserAsync(userId, new UserUpdate { Password = password, Is_active = true }, su, cancellationToken), cancellationToken);
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        try
        {
            var token = Answered(await langflow.LoginAsync(LangflowSuperuser.LoginForm(username, password), cancellationToken));
            return LangflowCredential.FromToken(token.Access_token);
        }
        catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest)
        {
            // Someone set another password in between: its flows are still there, so the user is not deleted yet.
            throw new TransientProvisioningException($"Could not log in as Langflow user {username} to delete its flows.", exception);
        }
    }


    // ---- Helpers ---------------------------------------------------------------------------------------

    private CatalogueEntry Entry(Subscription subscription)
    {
        var slug = offerings.Find(subscription.OfferingUuid)?.Slug
            ?? throw new PermanentProvisioningException("This offering is no longer served by the provider.");
        return catalogue.Find(slug)
            ?? throw new PermanentProvisioningException($"The provider's catalogue has no agent template for this offering ('{slug}').");
    }

    private async Task<UserRead?> FindUserAsync(string username, CancellationToken cancellationToken)
    {
        for (var skip = 0; ; skip += UserPageSize)
        {
            var page = Answered(await superuser.CallAsync(su => langflow.ListUsersAsync(skip, UserPageSize, su, cancellationToken), cancellationToken));
            if (page.Users.FirstOrDefault(u => u.Username == username) is { } user)
            {
                return user;
            }

            if (page.Users.Count < UserPageSize || skip + UserPageSize >= page.Total_count)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// Deletes every key of the user but the stored one. Adapter keys: minted by an attempt that crashed before
    /// saving, or by a concurrent order of the same project that lost the race to store its key (only safe once a
    /// key is stored: any attempt that minted another one read the workspace before that, so it cannot store its own
    /// any more; its save conflicts). Any other key was made by whoever had the user before the adapter adopted it
    /// (another deployment, a restored database): it would let them run, and read, this project's agents.
    /// </summary>
    private async Task RemoveUnstoredKeysAsync(Workspace workspace, LangflowCredential key, CancellationToken cancellationToken)
    {
        var stored = workspace.LangflowApiKeyId;
        var keys = Answered(await langflow.ListApiKeysAsync(key, cancellationToken));
        foreach (var other in keys.Api_keys.Where(k => k.Id.ToString() != stored))
        {
            if (!await DeleteKeyUnlessGoneAsync(other.Id, key, cancellationToken))
            {
                // Another order of the project (or a reconcile) deleted it between our list and our delete.
                logger.LogInformation("API key {LangflowApiKeyId} of Langflow user {LangflowUsername} was deleted meanwhile", other.Id, workspace.LangflowUsername);
                continue;
            }

            if (other.Name == TenantNames.ApiKeyName)
            {
                logger.LogWarning("Deleted API key {LangflowApiKeyId} of Langflow user {LangflowUsername}: its secret was never stored", other.Id, workspace.LangflowUsername);
            }
            else
            {
                logger.LogWarning("Deleted API key {LangflowApiKeyId} ({LangflowApiKeyName}) of Langflow user {LangflowUsername}: the adapter did not make it, and only the adapter may use the tenant", other.Id, other.Name, workspace.LangflowUsername);
            }
        }
    }

    /// <summary>
    /// Deletes one of the caller's keys; false when it was gone already. Langflow 1.4.2 answers every failure of this
    /// delete with a 400 carrying the exception's text, "API Key not found" included (not the 404 other deletes give):
    /// read as a refusal, a key another order deleted first would err this order for good. A 400 with other words
    /// counts as gone too when the key is no longer listed.
    /// </summary>
    private async Task<bool> DeleteKeyUnlessGoneAsync(Guid keyId, LangflowCredential key, CancellationToken cancellationToken)
    {
        try
        {
            await langflow.DeleteApiKeyAsync(keyId, key, cancellationToken);
            return true;
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound
            || (exception.StatusCode == HttpStatusCode.BadRequest && exception.Content?.Contains("not found", StringComparison.OrdinalIgnoreCase) == true))
        {
            return false;
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.BadRequest)
        {
            if (Answered(await langflow.ListApiKeysAsync(key, cancellationToken)).Api_keys.Any(k => k.Id == keyId))
            {
                throw;
            }

            return false;
        }
    }

    /// <summary>Whether the stored user and password still log in (the user exists, is active, and the password is right).</summary>
    private async Task<bool> CanLogInAsync(Workspace workspace, CancellationToken cancellationToken)
    {
        if (workspace.LangflowUserId is null || workspace.LangflowUsername is null || workspace.LangflowPasswordCipher is null)
        {
            return false;
        }

        try
        {
            await langflow.LoginAsync(LangflowSuperuser.LoginForm(workspace.LangflowUsername, credentials.Unprotect(workspace.LangflowPasswordCipher)), cancellationToken);
            return true;
        }
        catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest)
        {
            return false; // Wrong password or inactive ("Waiting for approval"): repair below.
        }
    }

    private LangflowCredential TenantKey(Workspace workspace) =>
        LangflowCredential.FromApiKey(credentials.Unprotect(
            workspace.LangflowApiKeyCipher ?? throw new InvalidOperationException("The tenant's API key has not been created yet.")));

    /// <summary>
    /// The tenant's bearer token from its own login. A refused login means the stored password is stale (two
    /// orders of one project raced): the superuser sets a fresh one and the login is repeated once.
    /// </summary>
    private async Task<LangflowCredential> LoginAsTenantAsync(Workspace workspace, CancellationToken cancellationToken)
    {
        var username = workspace.LangflowUsername ?? throw new InvalidOperationException("The Langflow user step has not run.");
        var password = credentials.Unprotect(workspace.LangflowPasswordCipher ?? throw new InvalidOperationException("The Langflow user step has not run."));
        try
        {
            var token = Answered(await langflow.LoginAsync(LangflowSuperuser.LoginForm(username, password), cancellationToken));
            return LangflowCredential.FromToken(token.Access_token);
        }
        catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest)
        {
            var userId = Guid.Parse(workspace.LangflowUserId!);
            password = UpstreamCredentials.NewPassword();
            await superuser.CallAsync(su => langflow.UpdateUserAsync(userId, new UserUpdate { Password = password, Is_active = true }, su, cancellationToken), cancellationToken);
            workspace.LangflowPasswordCipher = credentials.Protect(password);
            try
            {
                var token = Answered(await langflow.LoginAsync(LangflowSuperuser.LoginForm(username, password), cancellationToken));
                return LangflowCredential.FromToken(token.Access_token);
            }
            catch (ApiException again) when (again.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest)
            {
                // Another order of the project set a password in between: not an operator problem, retry later.
                throw new TransientProvisioningException("The tenant's password was changed concurrently.", again);
            }
        }
    }

    /// <summary>
    /// Teardown as the tenant: with its key, or with its login when it has none or Langflow refuses the key (deleted
    /// in Langflow's own UI, say; a teardown that insisted on it would fail for good). Nothing is done when the project
    /// has no Langflow user, or the user is gone from Langflow (its flows, if any are left, are no longer reachable):
    /// false then.
    /// </summary>
    private async Task<bool> AsTenantAsync(Workspace workspace, Func<LangflowCredential, Task> teardown, CancellationToken cancellationToken)
    {
        var canLogIn = workspace.LangflowPasswordCipher is not null && workspace.LangflowUserId is not null;
        if (workspace.LangflowApiKeyCipher is not null)
        {
            try
            {
                await teardown(TenantKey(workspace));
                return true;
            }
            catch (ApiException exception) when (canLogIn && exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                logger.LogWarning("Langflow refused the stored API key of user {LangflowUsername}; tearing down with the user's login instead", workspace.LangflowUsername);
            }
        }

        if (!canLogIn)
        {
            return false;
        }

        LangflowCredential login;
        try
        {
            login = await LoginAsTenantAsync(workspace, cancellationToken);
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            logger.LogInformation("Langflow user {LangflowUsername} is gone", workspace.LangflowUsername);
            return false;
        }

        await teardown(login);
        return true;
    }

    /// <summary>An empty 2xx body (a proxy's doing) deserializes to null: treat it as a failed call, worth retrying.</summary>
    private static T Answered<T>(T? answer)
        where T : class =>
        answer ?? throw new TransientProvisioningException($"Langflow answered with an empty body where a {typeof(T).Name} was expected.");

    /// <summary>Deleting what is already gone is success.</summary>
    private static async Task<bool> IgnoreMissingAsync(Func<Task> delete)
    {
        try
        {
            await delete();
            return true;
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }
}
