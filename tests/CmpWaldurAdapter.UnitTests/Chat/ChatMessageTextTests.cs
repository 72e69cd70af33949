using System.Text.Json;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Chat;

namespace CmpWaldurAdapter.UnitTests.Chat;

/// <summary>Which message contents are Unicode text the pipeline can read, escaped surrogates included.</summary>
public sealed class ChatMessageTextTests
{
    private static ChatMessage Message(string content) =>
        JsonSerializer.Deserialize<ChatMessage>($$"""{"role":"user","content":{{content}}}""", ApiJson.Options)!;

    [Theory]
    [InlineData("\"plain text\"")]
    [InlineData("\"a whole emoji \\ud83d\\udce6 and an upper-case one \\uD83D\\uDC4B\"")]
    [InlineData("\"escapes of every kind: \\n \\t \\\" \\\\ \\/ \\u00e9 \\u20ac\"")]
    [InlineData("\"an escaped backslash before u: \\\\ud83d\"")]
    [InlineData("\"a backslash escaped as \\u005cud83d\"")]
    [InlineData("\"\\ud83d\\udce6\"")]
    [InlineData("[{\"type\":\"text\",\"text\":\"Hi \\ud83d\\udc4b\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.org/a.png\"}}]")]
    [InlineData("null")]
    public void Text_and_escaped_surrogate_pairs_are_unicode(string content)
    {
        var message = Message(content);

        Assert.True(message.ContentIsUnicode);
        _ = message.Text; // and it reads
    }

    [Theory]
    [InlineData("\"cut mid-emoji \\ud83d\"")]
    [InlineData("\"\\ud83d\"")]
    [InlineData("\"a low half alone \\udce6\"")]
    [InlineData("\"halves swapped \\udce6\\ud83d\"")]
    [InlineData("\"two high halves \\ud83d\\ud83d\"")]
    [InlineData("\"text between the halves \\ud83dx\\udce6\"")]
    [InlineData("\"another escape after a high half \\ud83d\\n\"")]
    [InlineData("[\"\\ud83d\", \"\\udce6\"]")]
    [InlineData("[{\"type\":\"text\",\"text\":\"fine\"},{\"type\":\"text\",\"text\":\"cut \\ud83d\"}]")]
    [InlineData("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.org/\\ud83d.png\"}}]")]
    public void A_lone_surrogate_escape_anywhere_in_the_content_is_not(string content) =>
        Assert.False(Message(content).ContentIsUnicode);

    [Fact]
    public void A_message_without_content_has_no_text_to_refuse()
    {
        var message = JsonSerializer.Deserialize<ChatMessage>("""{"role":"assistant"}""", ApiJson.Options)!;

        Assert.True(message.ContentIsUnicode);
        Assert.Null(message.Text);
    }
}
