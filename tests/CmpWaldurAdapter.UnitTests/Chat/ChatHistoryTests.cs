using System.Text.Json;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Chat;

namespace CmpWaldurAdapter.UnitTests.Chat;

/// <summary>The earlier turns a client sends in <c>messages</c>, as the agent is given them.</summary>
public sealed class ChatHistoryTests
{
    private static ChatCompletionRequest Request(string json) => JsonSerializer.Deserialize<ChatCompletionRequest>(json, ApiJson.Options)!;

    [Fact]
    public void The_turns_before_the_last_user_message_go_oldest_first_without_system_messages_or_the_message_itself()
    {
        var request = Request("""
            {"messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":"My order is 4711."},
              {"role":"assistant","content":"Noted: 4711."},
              {"role":"tool","content":"{}"},
              {"role":"user","content":"Where is it?"}]}
            """);

        Assert.Equal("The conversation so far, oldest first:\nuser: My order is 4711.\nassistant: Noted: 4711.", ChatService.History(request, 1000));
    }

    [Fact]
    public void Over_the_limit_the_newest_turns_are_kept()
    {
        var request = Request("""{"messages":[{"role":"user","content":"first question"},{"role":"assistant","content":"first answer"},{"role":"user","content":"second question"},{"role":"assistant","content":"second answer"},{"role":"user","content":"now"}]}""");

        var history = ChatService.History(request, "user: second question\nassistant: second answer".Length + 1);

        Assert.Equal("The conversation so far, oldest first:\nuser: second question\nassistant: second answer", history);
    }

    [Theory]
    [InlineData("""{"message":"just this"}""")]
    [InlineData("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"only turn"}]}""")]
    public void Without_earlier_turns_there_is_no_history(string json) => Assert.Null(ChatService.History(Request(json), 1000));

    [Fact]
    public void A_limit_of_zero_sends_none() =>
        Assert.Null(ChatService.History(Request("""{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"""), 0));
}
