using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// The adapter dies right after each upstream side effect of every provisioning step, before the step's
/// completion is saved. The replayed order must converge on exactly one tenant, with no twins left behind.
/// </summary>
public sealed class TenantCrashRecoveryTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    /// <summary>Step, upstream, and the request whose answer the adapter never sees.</summary>
    public static TheoryData<string, string, string, string> CreateCrashPoints => new()
    {
        { LangflowRagflowProvisioner.LangflowUserStep, "langflow", "POST", "/api/v1/users/" },
        { LangflowRagflowProvisioner.LangflowUserStep, "langflow", "PATCH", "/api/v1/users/.+" },
        { LangflowRagflowProvisioner.LangflowUserKeyStep, "langflow", "POST", "/api/v1/api_key/" },
        { LangflowRagflowProvisioner.LangflowProjectStep, "langflow", "POST", "/api/v1/projects/" },
        { LangflowRagflowProvisioner.LangflowFlowStep, "langflow", "POST", "/api/v1/flows/" },
        { LangflowRagflowProvisioner.RagflowDatasetStep, "ragflow", "POST", "/api/v1/datasets" },
    };

    public static TheoryData<string, string, string, string> TerminateCrashPoints => new()
    {
        { LangflowRagflowProvisioner.RagflowDatasetDeleteStep, "ragflow", "DELETE", "/api/v1/datasets" },
        { LangflowRagflowProvisioner.LangflowFlowDeleteStep, "langflow", "DELETE", "/api/v1/flows/.+" },
        { LangflowRagflowProvisioner.LangflowProjectDeleteStep, "langflow", "DELETE", "/api/v1/projects/.+" },
        { LangflowRagflowProvisioner.LangflowUserDeleteIfLastStep, "langflow", "DELETE", "/api/v1/users/.+" },
    };

    [Fact]
    public void Every_provisioning_step_has_a_crash_point()
    {
        Assert.Equal(LangflowRagflowProvisioner.CreateSteps.Order(), CreateCrashPoints.Select(row => (string)row[0]).Distinct().Order());
        Assert.Equal(LangflowRagflowProvisioner.TerminateSteps.Order(), TerminateCrashPoints.Select(row => (string)row[0]).Distinct().Order());
    }

    [Theory]
    [MemberData(nameof(CreateCrashPoints))]
    public async Task A_crash_after_any_create_step_converges_to_one_tenant_and_no_twins(string step, string upstream, string method, string path)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);

        await CrashAsync(order, upstream, method, path);
        Assert.False(await _bed.QueryAsync(db => db.Orders.AnyAsync(o => o.CompletedSteps.Contains(step))), $"{step} must not count as completed");

        var (outcome, _) = await _bed.ProcessUntilSettledAsync(order);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        await AssertOneWorkingTenantAsync(resource);
    }

    [Theory]
    [MemberData(nameof(TerminateCrashPoints))]
    public async Task A_crash_after_any_terminate_step_still_removes_everything(string step, string upstream, string method, string path)
    {
        var resource = await _bed.SubscribeAsync();
        var order = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);

        await CrashAsync(order, upstream, method, path);
        Assert.False(await _bed.QueryAsync(db => db.Orders.AnyAsync(o => o.OrderUuid == order && o.CompletedSteps.Contains(step))), $"{step} must not count as completed");
        Assert.NotEqual("done", _bed.Waldur.OrderState(order));

        var (outcome, _) = await _bed.ProcessUntilSettledAsync(order);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.Flows);
        Assert.Empty(_bed.Langflow.ApiKeys);
        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(resource)).State);
        var removed = _bed.Waldur.Resource(resource)["report"]![0]!["body"]!.GetValue<string>();
        Assert.Contains("knowledge base", removed);
        Assert.Contains("conversation history", removed);
        Assert.Contains("agent runtime", removed);
    }

    /// <summary>Runs the order until the matching request has been answered upstream, then "kills" the process.</summary>
    private async Task CrashAsync(Guid order, string upstream, string method, string path)
    {
        FakeUpstream fake = upstream == "langflow" ? _bed.Langflow.Upstream : _bed.Ragflow.Upstream;
        using var crash = new CancellationTokenSource();
        var crashed = 0;
        fake.Observe = (request, _) =>
        {
            if (request.Method == method && Regex.IsMatch(request.Path, "^" + path + "$") && Interlocked.Exchange(ref crashed, 1) == 0)
            {
                crash.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _bed.Processor.ProcessAsync(order, crash.Token));
        fake.Observe = null;
        Assert.Equal(1, crashed);
        await _bed.ExpireLeasesAsync();
    }

    private async Task AssertOneWorkingTenantAsync(Guid resource)
    {
        var subscription = await _bed.SubscriptionAsync(resource);
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        Assert.Equal(SubscriptionState.Active, subscription.State);

        var user = Assert.Single(_bed.Langflow.Users);
        Assert.True(user.IsActive);
        Assert.Equal(user.Id.ToString(), workspace.LangflowUserId);
        var key = Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Equal(key.Secret, _bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));
        var project = Assert.Single(_bed.Langflow.Projects, p => p.UserId == user.Id && p.Name != LangflowFake.DefaultProjectName);
        Assert.Equal(project.Id.ToString(), subscription.LangflowProjectId);
        var flow = Assert.Single(_bed.Langflow.Flows);
        Assert.Equal((flow.Id.ToString(), project.Id), (subscription.LangflowFlowId, flow.FolderId));
        var dataset = Assert.Single(_bed.Ragflow.Datasets);
        Assert.Equal(dataset["id"]!.GetValue<string>(), subscription.RagflowDatasetId);
        Assert.Equal($"cmp-{resource:N}", dataset["name"]!.GetValue<string>());

        // The stored password and key still work: the tenant can log in and run its own flow.
        var langflow = _bed.Services.GetRequiredService<ILangflowApi>();
        await langflow.LoginAsync(LangflowSuperuser.LoginForm(workspace.LangflowUsername!, _bed.Credentials.Unprotect(workspace.LangflowPasswordCipher!)), CancellationToken.None);
        var run = await langflow.RunAsync(flow.Id, new SimplifiedAPIRequest { Input_value = "hello", Session_id = $"{resource}:test" }, LangflowCredential.FromApiKey(key.Secret), CancellationToken.None);
        Assert.Equal("echo: hello", run.Text());
    }
}
