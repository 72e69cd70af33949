using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using Refit;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// Runs a subscription's own Langflow flow (the id on its row) with its workspace's own Langflow key, so a
/// run can only reach that tenant's flows and history. Langflow's answers and events are translated here and
/// never reach the client: failures become <see cref="AgentUnavailableException"/>.
/// </summary>
public sealed class LangflowAgentRuntime(ILangflowApi langflow, LangflowStreamingRuns streams, UpstreamCredentials credentials, ILogger<LangflowAgentRuntime> logger) : IAgentRuntime
{
    // Decrypting a key costs a Data Protection round; a regenerated key has a new cipher, so entries never go stale.
    private readonly ConcurrentDictionary<string, LangflowCredential> _keys = new(StringComparer.Ordinal);

    public Task<string> RunAsync(AgentRequest request, CancellationToken cancellationToken)
    {
        var (flowId, key) = Target(request);
        return RunFlowAsync(flowId, key, Body(request), cancellationToken);
    }

    /// <summary>A shared demo flow (try mode), run with the demo user's key and the flow's own settings.</summary>
    public Task<string> RunDemoAsync(Guid flowId, string keyCipher, string sessionId, string input, CancellationToken cancellationToken) =>
        RunFlowAsync(flowId, Key(keyCipher), new SimplifiedAPIRequest
        {
            Input_value = input,
            Input_type = SimplifiedAPIRequestInput_type.Chat,
            Output_type = SimplifiedAPIRequestOutput_type.Chat,
            Session_id = sessionId,
        }, cancellationToken);

    private async Task<string> RunFlowAsync(Guid flowId, LangflowCredential key, SimplifiedAPIRequest body, CancellationToken cancellationToken)
    {
        RunResponse? response;
        try
        {
            response = await langflow.RunAsync(flowId, body, key, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw Translate(exception);
        }

        return response?.Text() ?? throw new AgentUnavailableException("The flow answered without a message.", transient: false);
    }

    public async IAsyncEnumerable<string> StreamAsync(AgentRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var (flowId, key) = Target(request);
        await using var events = streams.RunAsync(flowId, Body(request), key, cancellationToken).GetAsyncEnumerator(cancellationToken);
        var streamed = false;
        while (true)
        {
            LangflowRunEvent current;
            try
            {
                if (!await events.MoveNextAsync())
                {
                    break;
                }

                current = events.Current;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw Translate(exception);
            }

            switch (current.Event)
            {
                case "token" when current.Chunk is { Length: > 0 } chunk:
                    streamed = true;
                    yield return chunk;
                    break;
                case "error":
                    logger.LogWarning("Langflow reported an error in a run of flow {LangflowFlowId}: {Reason}", flowId, current.Error);
                    throw new AgentUnavailableException("The flow failed while answering.", transient: false);
                case "end":
                    if (!streamed)
                    {
                        // A model that does not stream: the whole answer arrives with the end of the run.
                        yield return current.Result?.Text() ?? throw new AgentUnavailableException("The flow answered without a message.", transient: false);
                    }

                    yield break;
            }
        }

        // Langflow does not always send "error": a stream that stops before "end" is a failed run.
        throw new AgentUnavailableException("The flow's stream ended before the run finished.", transient: true);
    }

    private (Guid FlowId, LangflowCredential Key) Target(AgentRequest request)
    {
        if (request.Subscription.LangflowFlowId is not { } flow || !Guid.TryParse(flow, out var flowId) || request.Workspace.LangflowApiKeyCipher is not { } cipher)
        {
            throw new AgentUnavailableException("This agent has not been set up yet.", transient: true);
        }

        return (flowId, Key(cipher));
    }

    private LangflowCredential Key(string cipher) => _keys.GetOrAdd(cipher, c => LangflowCredential.FromApiKey(credentials.Unprotect(c)));

    private static SimplifiedAPIRequest Body(AgentRequest request)
    {
        var tweaks = new Tweaks();
        foreach (var (component, fields) in request.Tweaks)
        {
            tweaks[component] = fields;
        }

        return new SimplifiedAPIRequest
        {
            Input_value = request.Input,
            Input_type = SimplifiedAPIRequestInput_type.Chat,
            Output_type = SimplifiedAPIRequestOutput_type.Chat,
            Session_id = request.SessionId,
            Tweaks = tweaks,
        };
    }

    /// <summary>Refusals (4xx: a broken flow or key) are not worth retrying; everything else (5xx, network, timeouts) is.</summary>
    private AgentUnavailableException Translate(Exception exception)
    {
        var status = exception switch
        {
            ApiException api => api.StatusCode,
            LangflowRunException run => run.Status,
            _ => (HttpStatusCode?)null,
        };
        logger.LogWarning("Langflow run failed: {Reason}", status is { } code ? $"HTTP {(int)code}" : exception.GetType().Name);
        var transient = status is null or >= HttpStatusCode.InternalServerError or HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout;
        return new AgentUnavailableException(transient ? "Langflow is unavailable." : "Langflow refused the run.", transient, exception);
    }
}
