using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>
/// When a question counts as unanswered, and when a visitor asks for a person. An answer is unanswered when
/// the subscription's knowledge base was searched and returned nothing for the question (whatever the agent
/// then said: a confident answer without sources is not one from the buyer's documents), or when the agent
/// says it cannot answer (the flow templates instruct it to say so plainly).
/// </summary>
public static partial class HandoffRules
{
    public static bool IsUnanswered(string answer, bool nothingRetrieved = false) => nothingRetrieved || CannotAnswer().IsMatch(answer);

    public static bool AsksForHuman(string question) => HumanRequest().IsMatch(question);

    [GeneratedRegex(@"\b(I (do not|don't|cannot|can't|could not|couldn't) (know|find|answer|help with)|I('m| am) (not sure|unable to (answer|help|find))|(no|not find any) (relevant )?information (about|on|in)|not (covered|mentioned) in (the|my|our) (documents?|knowledge|sources?))\b|\[NO_ANSWER\]", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CannotAnswer();

    [GeneratedRegex(@"\b((talk|speak|chat) (to|with) (a |an |some |your )?(human|person|agent|operator|someone|representative|real person)|(human|real person|live agent|operator|representative) please|connect me (to|with)|escalate)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HumanRequest();
}
