using System.Net;
using System.Security.Cryptography;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Waldur.Api;
using Refit;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// Builds, changes and removes a subscription's tenant on the shared Langflow and RAGFlow: one Langflow user
/// per Waldur project (with its own API key), one Langflow project and flow per subscription, one RAGFlow
/// dataset per subscription. Every step looks before it creates and removes renamed twins, so a step repeated
/// after a crash converges on one tenant. Step names are persisted with orders: never rename them.
/// </summary>
public sealed class LangflowRagflowProvisioner(LangflowTenant langflow, RagflowTenant ragflow) : ITenantProvisioner
{
    public const string LangflowUserStep = "langflow-user";
    public const string LangflowUserKeyStep = "langflow-user-key";
    public const string LangflowProjectStep = "langflow-project";
    public const string LangflowFlowStep = "langflow-flow";
    public const string RagflowDatasetStep = "ragflow-dataset";
    public const string LangflowFlowConfigStep = "langflow-flow-config";
    public const string RagflowDatasetDeleteStep = "ragflow-dataset-delete";
    public const string LangflowFlowDeleteStep = "langflow-flow-delete";
    public const string LangflowProjectDeleteStep = "langflow-project-delete";
    public const string LangflowUserDeleteIfLastStep = "langflow-user-delete-if-last";

    public static readonly IReadOnlyList<string> CreateSteps = [LangflowUserStep, LangflowUserKeyStep, LangflowProjectStep, LangflowFlowStep, RagflowDatasetStep];
    public static readonly IReadOnlyList<string> UpdateSteps = [LangflowFlowConfigStep];
    public static readonly IReadOnlyList<string> TerminateSteps = [RagflowDatasetDeleteStep, LangflowFlowDeleteStep, LangflowProjectDeleteStep, LangflowUserDeleteIfLastStep];

    public IReadOnlyList<ProvisioningStep> StepsFor(OrderType type) => type switch
    {
        OrderType.Create or OrderType.Restore =>
        [
            Step(LangflowUserStep, "The agent runtime account for your project could not be created", langflow.EnsureUserAsync),
            Step(LangflowUserKeyStep, "The agent runtime account for your project could not be set up", langflow.EnsureUserKeyAsync),
            Step(LangflowProjectStep, "The agent's workspace could not be created", langflow.EnsureProjectAsync),
            Step(LangflowFlowStep, "The agent could not be created", langflow.EnsureFlowAsync),
            Step(RagflowDatasetStep, "The knowledge base could not be created", ragflow.EnsureDatasetAsync),
        ],
        OrderType.Update =>
        [
            Step(LangflowFlowConfigStep, "The agent could not be updated with your settings", langflow.ApplyConfigurationAsync),
        ],
        OrderType.Terminate =>
        [
            Step(RagflowDatasetDeleteStep, "The knowledge base could not be removed", ragflow.DeleteDatasetAsync),
            Step(LangflowFlowDeleteStep, "The agent could not be removed", langflow.DeleteFlowAsync),
            Step(LangflowProjectDeleteStep, "The agent's workspace could not be removed", langflow.DeleteProjectAsync),
            Step(LangflowUserDeleteIfLastStep, "The agent runtime account for your project could not be removed", langflow.DeleteUserIfLastAsync),
        ],
        _ => [],
    };

    private static ProvisioningStep Step(string name, string failure, Func<ProvisioningContext, CancellationToken, Task> run) =>
        new(name, async (context, cancellationToken) =>
        {
            try
            {
                await run(context, cancellationToken);
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested && Classify(failure, exception) is { } classified)
            {
                throw classified;
            }
        });

    /// <summary>
    /// Upstream failures in the pipeline's terms: transient ones are retried later with the order still
    /// executing; permanent ones err the order with a message for the buyer (never upstream ids or keys).
    /// </summary>
    internal static Exception? Classify(string failure, Exception exception) => (RagflowException.Find(exception) ?? exception) switch
    {
        PermanentProvisioningException or TransientProvisioningException => null,
        RagflowException { IsTransient: true } ragflow =>
            new TransientProvisioningException($"{failure}: the knowledge-base service is unavailable ({Describe(ragflow)}).", ragflow),
        RagflowException { Code: RagflowErrors.Unauthorized } ragflow =>
            new PermanentProvisioningException($"{failure}: the knowledge-base service refused the provider's credentials; the provider has to correct the adapter's configuration.", ragflow),
        RagflowException ragflow =>
            new PermanentProvisioningException($"{failure}: the knowledge-base service refused the request (code {ragflow.Code}).", ragflow),
        ApiException { StatusCode: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden } api =>
            new PermanentProvisioningException($"{failure}: the agent runtime refused the provider's credentials; the provider has to correct the adapter's configuration.", api),
        // A 2xx that cannot be read is a garbled or cut-off answer (a proxy, a restart), not a refusal.
        ApiException api when UpstreamFailures.IsTransient(api) || (int)api.StatusCode < 300 =>
            new TransientProvisioningException($"{failure}: the agent runtime is unavailable ({UpstreamFailures.Describe(api)}).", api),
        ApiException api =>
            new PermanentProvisioningException($"{failure}: the agent runtime refused the request (HTTP {(int)api.StatusCode}).", api),
        FlowTemplateException template =>
            new PermanentProvisioningException($"{failure}: the offering's agent template is invalid.", template),
        CryptographicException crypto =>
            new PermanentProvisioningException($"{failure}: the stored upstream credentials cannot be decrypted (the data-protection key ring is missing or was replaced).", crypto),
        var other when UpstreamFailures.IsTransient(other) =>
            new TransientProvisioningException($"{failure}: an upstream service did not answer ({UpstreamFailures.Describe(exception)}).", exception),
        _ => null,
    };

    private static string Describe(RagflowException exception) => $"code {exception.Code}, HTTP {(int)exception.Status}";
}
