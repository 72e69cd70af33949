using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Emulators;

/// <summary>
/// Langflow's message store as a run sees it: Chat Input and Chat Output store their messages under the run's
/// <c>session_id</c> (when their <c>should_store_message</c> is on), and a Message History component (type
/// <c>Memory</c>) wired into the prompt reads the session's earlier messages back. Like Langflow's, it reads by
/// session id alone, not by flow. Each run is recorded with the history its prompt received.
/// </summary>
public partial class LangflowEmulator
{
    private readonly List<StoredMessage> _messages = [];
    private readonly List<LangflowRunHistory> _histories = [];

    /// <summary>Every run so far, oldest first, with its session and the history its prompt was given.</summary>
    public IReadOnlyList<LangflowRunHistory> RunHistories => Snapshot(() => _histories.ToList());

    /// <summary>
    /// Records a run (called under the lock, before its messages are stored): its prompt's history is the session's
    /// earlier messages as the flow's Memory component formats them, or null when the flow has none wired to the prompt.
    /// </summary>
    private void RecordRun(Guid flowId, JsonObject flow, JsonObject? tweaks, string session, string input)
    {
        _histories.Add(new LangflowRunHistory(flowId, session, input, History(flow, tweaks, session)));
    }

    /// <summary>Stores what the run's Chat Input and Chat Output store (called under the lock); a null answer stores none.</summary>
    private void StoreMessages(Guid flowId, JsonObject flow, JsonObject? tweaks, string session, string input, string? answer)
    {
        if (Stores(flow, tweaks, "ChatInput-cmp01"))
        {
            _messages.Add(new StoredMessage(flowId, session, "User", FieldText(flow, tweaks, "ChatInput-cmp01", "sender_name") ?? "User", input));
        }

        if (answer is not null && Stores(flow, tweaks, "ChatOutput-cmp01"))
        {
            _messages.Add(new StoredMessage(flowId, session, "Machine", FieldText(flow, tweaks, "ChatOutput-cmp01", "sender_name") ?? "AI", answer));
        }
    }

    /// <summary>Langflow deletes a flow's messages with the flow.</summary>
    private void ForgetMessagesOf(Guid flowId) => _messages.RemoveAll(m => m.FlowId == flowId);

    private string? History(JsonObject flow, JsonObject? tweaks, string session)
    {
        var edges = (flow["data"]?["edges"] as JsonArray)?.OfType<JsonObject>() ?? [];
        var memoryId = edges
            .Where(e => e["target"]?.GetValue<string>() == "Prompt-cmp01" && e["data"]?["sourceHandle"]?["name"]?.GetValue<string>() == "messages_text")
            .Select(e => e["source"]?.GetValue<string>())
            .FirstOrDefault(id => id is not null && Node(flow, id)?["data"]?["type"]?.GetValue<string>() == "Memory");
        if (memoryId is null)
        {
            return null;
        }

        var sessionId = FieldText(flow, tweaks, memoryId, "session_id") is { Length: > 0 } own ? own : session;
        var sender = FieldText(flow, tweaks, memoryId, "sender") ?? "Machine and User";
        var senderName = FieldText(flow, tweaks, memoryId, "sender_name");
        var limit = Field(flow, tweaks, memoryId, "n_messages") is JsonValue n && n.TryGetValue<int>(out var count) ? count : 100;
        var template = FieldText(flow, tweaks, memoryId, "template") ?? "{sender_name}: {text}";
        var messages = _messages
            .Where(m => m.SessionId == sessionId
                && (sender == "Machine and User" || m.Sender == sender)
                && (string.IsNullOrEmpty(senderName) || m.SenderName == senderName))
            .TakeLast(limit)
            .ToList();
        if (FieldText(flow, tweaks, memoryId, "order") == "Descending")
        {
            messages.Reverse();
        }

        return string.Join("\n", messages.Select(m => template
            .Replace("{sender_name}", m.SenderName, StringComparison.Ordinal)
            .Replace("{sender}", m.Sender, StringComparison.Ordinal)
            .Replace("{text}", m.Text, StringComparison.Ordinal)));
    }

    private static bool Stores(JsonObject flow, JsonObject? tweaks, string componentId) =>
        Field(flow, tweaks, componentId, "should_store_message") is not JsonValue value || !value.TryGetValue<bool>(out var store) || store;

    private static string? FieldText(JsonObject flow, JsonObject? tweaks, string componentId, string field) =>
        Field(flow, tweaks, componentId, field) is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    // A run's tweak of a field wins over the flow's stored value, as in Langflow.
    private static JsonNode? Field(JsonObject flow, JsonObject? tweaks, string componentId, string field) =>
        tweaks?[componentId]?[field] ?? Node(flow, componentId)?["data"]?["node"]?["template"]?[field]?["value"];

    private static JsonObject? Node(JsonObject flow, string componentId) =>
        (flow["data"]?["nodes"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(n => n["id"]?.GetValue<string>() == componentId);

    private sealed record StoredMessage(Guid FlowId, string SessionId, string Sender, string SenderName, string Text);
}

/// <summary>A run of a flow: its session, its input and the history text its prompt received (null: the flow has no memory).</summary>
public sealed record LangflowRunHistory(Guid FlowId, string SessionId, string Input, string? History);
