namespace CmpWaldurAdapter.Core.Catalogue;

/// <summary>The billable action classes; each is its own Waldur usage component, measured in credits.</summary>
public enum ActionClass
{
    ChatMessage,
    RagDocument,
    ImageGeneration,
    VoiceInteraction,
    AutomationRun,
}

public static class ActionClasses
{
    /// <summary>The Waldur usage component a class is reported under.</summary>
    public static string Component(ActionClass action) => action switch
    {
        ActionClass.ChatMessage => "chat_credits",
        ActionClass.RagDocument => "rag_credits",
        ActionClass.ImageGeneration => "image_credits",
        ActionClass.VoiceInteraction => "voice_credits",
        ActionClass.AutomationRun => "automation_credits",
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, "Unknown action class."),
    };

    /// <summary>The catalogue's spelling (pricing keys).</summary>
    public static string Key(ActionClass action) => action switch
    {
        ActionClass.ChatMessage => "chat_message",
        ActionClass.RagDocument => "rag_document",
        ActionClass.ImageGeneration => "image_generation",
        ActionClass.VoiceInteraction => "voice_interaction",
        ActionClass.AutomationRun => "automation_run",
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, "Unknown action class."),
    };

    public static bool TryParseKey(string key, out ActionClass action)
    {
        foreach (var candidate in Enum.GetValues<ActionClass>())
        {
            if (Key(candidate) == key)
            {
                action = candidate;
                return true;
            }
        }

        action = default;
        return false;
    }
}

/// <summary>
/// Credits per action for one offering, versioned: every ledger entry records the version it was
/// charged under, so a price change never rewrites history. Try mode and subscribing are free.
/// </summary>
public sealed record PriceBook(int Version, IReadOnlyDictionary<ActionClass, long> Credits)
{
    public bool Offers(ActionClass action) => Credits.ContainsKey(action);

    public long PriceOf(ActionClass action) =>
        Credits.TryGetValue(action, out var credits)
            ? credits
            : throw new InvalidOperationException($"This offering does not sell {ActionClasses.Key(action)}.");
}
