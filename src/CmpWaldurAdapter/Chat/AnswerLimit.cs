namespace CmpWaldurAdapter.Chat;

/// <summary>
/// Where an answer ends, as OpenAI ends one: before the first of the request's stop sequences (the sequence not
/// included, finish reason <c>stop</c>), or at its <c>max_tokens</c> (finish reason <c>length</c>). The flow's model
/// is given <c>max_tokens</c> too, but Langflow does not say why the model stopped, so the adapter cuts the text
/// itself at the estimate its usage reports (<see cref="ChatService.CharsPerToken"/> characters a token): an answer's
/// <c>completion_tokens</c> never exceed <c>max_tokens</c>. Fed the agent's pieces in order, it returns what may be
/// sent now and holds back only a tail that may be the start of a stop sequence.
/// </summary>
internal sealed class AnswerLimit(IReadOnlyList<string> stops, int? maxTokens)
{
    public const string Stop = "stop";

    public const string Length = "length";

    private readonly int _maxChars = maxTokens is { } tokens ? tokens * ChatService.CharsPerToken : int.MaxValue;
    private string _held = string.Empty;
    private int _sent;

    /// <summary><c>stop</c> or <c>length</c> once the answer has ended (nothing more is sent); null while it goes on.</summary>
    public string? FinishReason { get; private set; }

    /// <summary>The whole of a plain answer, cut where it ends.</summary>
    public string Cut(string answer) => Push(answer) + End();

    /// <summary>The next piece of the answer: returns the text that may be sent now (perhaps none).</summary>
    public string Push(string piece)
    {
        if (FinishReason is not null)
        {
            return string.Empty;
        }

        var text = _held + piece;
        var stop = FirstStop(text);
        if (stop >= 0)
        {
            FinishReason = Stop;
            _held = string.Empty;
            return Send(text[..stop]);
        }

        var ready = text.Length - PossibleStopStart(text);
        _held = text[ready..];
        return Send(text[..ready]);
    }

    /// <summary>The agent's answer ended: a held tail turned out to be no stop sequence and is sent.</summary>
    public string End()
    {
        if (FinishReason is not null)
        {
            return string.Empty;
        }

        var rest = Send(_held);
        _held = string.Empty;
        FinishReason ??= Stop;
        return rest;
    }

    /// <summary>The text within the answer's length, ending it when the text goes past it.</summary>
    private string Send(string text)
    {
        var room = _maxChars - _sent;
        if (text.Length > room)
        {
            // Never half an emoji: a high surrogate at the edge goes with its pair.
            text = text[..(room > 0 && char.IsHighSurrogate(text[room - 1]) ? room - 1 : room)];
            FinishReason = Length;
        }

        _sent += text.Length;
        return text;
    }

    private int FirstStop(string text)
    {
        var first = -1;
        foreach (var stop in stops)
        {
            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        return first;
    }

    /// <summary>How long the longest end of <paramref name="text"/> is that begins a stop sequence (0: none does).</summary>
    private int PossibleStopStart(string text)
    {
        var longest = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }

        return longest;
    }
}
