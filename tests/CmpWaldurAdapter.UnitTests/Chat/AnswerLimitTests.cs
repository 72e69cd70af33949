using System.Text.Json;
using CmpWaldurAdapter.Chat;

namespace CmpWaldurAdapter.UnitTests.Chat;

/// <summary>Where an answer fed in pieces ends: its first stop sequence or its max_tokens, holding back no more than a possible stop.</summary>
public sealed class AnswerLimitTests
{
    /// <summary>What is sent after each piece, then what the end of the answer sends (each after a "|"), and the finish reason.</summary>
    private static (string Sent, string? Finish) Feed(string[] stops, int? maxTokens, params string[] pieces)
    {
        var limit = new AnswerLimit(stops, maxTokens);
        var sent = pieces.Select(limit.Push).ToList();
        sent.Add(limit.End());
        return (string.Join("|", sent), limit.FinishReason);
    }

    [Fact]
    public void Without_stops_or_limit_every_piece_is_sent_as_it_comes_and_the_answer_stops()
    {
        Assert.Equal(("Hello| there|", "stop"), Feed([], null, "Hello", " there"));
    }

    [Fact]
    public void Only_the_tail_that_may_begin_a_stop_sequence_is_held_back_and_sent_once_it_cannot()
    {
        // "ld" may begin "ld!" and "EN" may begin "END": each is held until the next piece shows it does not.
        Assert.Equal(("Hello, wor|ld |ENd|", "stop"), Feed(["END", "ld!"], null, "Hello, world", " EN", "d"));
    }

    [Fact]
    public void A_stop_sequence_straddling_pieces_ends_the_answer_before_it_and_nothing_after_is_sent()
    {
        Assert.Equal(("Hello ||||", "stop"), Feed(["STOP"], null, "Hello ST", "O", "P and more", "even more"));
    }

    [Fact]
    public void The_first_stop_sequence_in_the_text_wins_whichever_is_listed_first()
    {
        Assert.Equal(("a b|", "stop"), Feed(["d", " c"], null, "a b c d"));
    }

    [Fact]
    public void An_answer_ending_on_a_possible_stop_start_sends_it_at_the_end()
    {
        Assert.Equal(("Hello |S", "stop"), Feed(["STOP"], null, "Hello S"));
    }

    [Fact]
    public void Max_tokens_cut_at_four_characters_a_token_with_finish_length()
    {
        Assert.Equal(("abcd|efgh||", "length"), Feed([], 2, "abcd", "efghij", "kl"));
    }

    [Fact]
    public void An_answer_exactly_max_tokens_long_stops()
    {
        Assert.Equal(("abcd|efgh|", "stop"), Feed([], 2, "abcd", "efgh"));
    }

    [Fact]
    public void A_stop_past_max_tokens_is_a_length_cut_and_one_within_it_a_stop()
    {
        Assert.Equal(("abcd|", "length"), Feed(["X"], 1, "abcdefX"));
        Assert.Equal(("abc|", "stop"), Feed(["X"], 1, "abcXdef"));
    }

    [Fact]
    public void A_held_tail_past_max_tokens_is_cut_at_the_end()
    {
        Assert.Equal(("abc|d", "length"), Feed(["de!"], 1, "abcde"));
    }

    [Fact]
    public void A_length_cut_never_splits_an_emoji()
    {
        Assert.Equal(("abc|", "length"), Feed([], 1, "abc\U0001F4E6"));
    }

    [Theory]
    [InlineData("null", new string[0])]
    [InlineData("\"END\"", new[] { "END" })]
    [InlineData("\"\"", new string[0])]
    [InlineData("[\"a\", \"\", \"b\", \"c\"]", new[] { "a", "b", "c" })]
    public void Stop_sequences_are_a_string_or_up_to_four_with_empty_ones_ignored(string json, string[] stops)
    {
        Assert.Equal(stops, ChatService.StopSequences(JsonDocument.Parse(json).RootElement));
        Assert.Empty(ChatService.StopSequences(null)!);
    }

    [Theory]
    [InlineData("[\"a\", \"b\", \"c\", \"d\", \"e\"]")]
    [InlineData("[\"a\", null]")]
    [InlineData("7")]
    [InlineData("{}")]
    public void Other_stop_values_are_malformed(string json)
    {
        Assert.Null(ChatService.StopSequences(JsonDocument.Parse(json).RootElement));
    }
}
