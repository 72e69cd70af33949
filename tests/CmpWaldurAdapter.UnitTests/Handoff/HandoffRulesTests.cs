using CmpWaldurAdapter.Capabilities.Handoff;

namespace CmpWaldurAdapter.UnitTests.Handoff;

public sealed class HandoffRulesTests
{
    [Theory]
    [InlineData("I'm sorry, I don't know the answer to that.", true)]
    [InlineData("I cannot answer that from the documents I have.", true)]
    [InlineData("I could not find anything about refunds.", true)]
    [InlineData("That is not covered in the documents.", true)]
    [InlineData("[NO_ANSWER]", true)]
    [InlineData("Your parcel left the warehouse today.", false)]
    [InlineData("I know exactly where it is: in Tartu.", false)]
    public void With_passages_retrieved_an_answer_is_unanswered_only_when_the_agent_says_it_cannot_answer(string answer, bool unanswered) =>
        Assert.Equal(unanswered, HandoffRules.IsUnanswered(answer, nothingRetrieved: false));

    [Theory]
    [InlineData("Your parcel left the warehouse today.")]
    [InlineData("[NO_ANSWER]")]
    public void An_empty_retrieval_makes_any_answer_unanswered(string answer) =>
        Assert.True(HandoffRules.IsUnanswered(answer, nothingRetrieved: true));

    [Theory]
    [InlineData("conv-1", "conversation-conv-1")]
    [InlineData("ticket:7.b", "conversation-ticket_003A7_002Eb")]
    [InlineData("a_b", "conversation-a_005Fb")]
    [InlineData("\"><script>", "conversation-_0022_003E_003Cscript_003E")]
    public void A_conversations_row_anchor_keeps_letters_digits_and_dashes_and_encodes_the_rest(string conversation, string anchor) =>
        Assert.Equal(anchor, HandoffService.AnchorOf(conversation));

    [Fact]
    public void Distinct_conversations_have_distinct_anchors()
    {
        // '_' is encoded too, so an encoded character cannot collide with a literal one.
        string[] conversations = ["a:b", "a_003Ab", "a.b", "a-b", "ab", "A:B"];

        Assert.Equal(conversations.Length, conversations.Select(HandoffService.AnchorOf).Distinct(StringComparer.Ordinal).Count());
        Assert.All(conversations.Select(HandoffService.AnchorOf), a => Assert.Matches("^[A-Za-z0-9_-]+$", a));
    }

    [Theory]
    [InlineData("Can I talk to a human?", true)]
    [InlineData("please connect me with someone", true)]
    [InlineData("I want to speak to a person", true)]
    [InlineData("live agent please", true)]
    [InlineData("How do humans use this product?", false)]
    [InlineData("Where is my parcel?", false)]
    public void A_visitor_asks_for_a_person_in_plain_words(string question, bool asks) =>
        Assert.Equal(asks, HandoffRules.AsksForHuman(question));

    [Theory]
    [InlineData("""{"escalate_after": 3}""", 3)]
    [InlineData("""{"escalate_after": "5"}""", 5)]
    [InlineData("""{"escalate_after": 0}""", null)]
    [InlineData("""{"escalate_after": "soon"}""", null)]
    [InlineData("""{}""", null)]
    public void The_threshold_comes_from_the_subscriptions_configuration(string configuration, int? threshold) =>
        Assert.Equal(threshold, HandoffService.EscalateAfter(configuration));

    [Fact]
    public void The_signature_is_hmac_sha256_of_timestamp_dot_body()
    {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData("whsec_test"u8, "1700000000.{\"a\":1}"u8));

        Assert.Equal($"t=1700000000,v1={expected}", HandoffWebhookSender.Sign("whsec_test", 1700000000, """{"a":1}"""));
    }
}
