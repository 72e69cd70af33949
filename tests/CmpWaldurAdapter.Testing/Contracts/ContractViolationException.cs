using System.Text;
using Xunit.Sdk;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// Requests sent to a fake upstream broke its OpenAPI contract. Derives from xunit's exception
/// so the runner shows the message as an assertion failure, not as a crash.
/// </summary>
public sealed class ContractViolationException : XunitException
{
    /// <summary>Creates the exception and its multi-line message.</summary>
    /// <param name="specName">The spec checked against.</param>
    /// <param name="checkedCount">How many requests were checked.</param>
    /// <param name="requests">The requests that broke it, each with its violations.</param>
    public ContractViolationException(string specName, int checkedCount, IReadOnlyList<NonConformingRequest> requests)
        : base(Format(specName, checkedCount, requests))
    {
        SpecName = specName;
        Requests = requests;
    }

    /// <summary>The spec checked against.</summary>
    public string SpecName { get; }

    /// <summary>The offending requests.</summary>
    public IReadOnlyList<NonConformingRequest> Requests { get; }

    private static string Format(string specName, int checkedCount, IReadOnlyList<NonConformingRequest> requests)
    {
        var text = new StringBuilder()
            .Append(requests.Count).Append(" of ").Append(checkedCount)
            .Append(checkedCount == 1 ? " request does" : " requests do")
            .Append(" not conform to ").Append(specName).Append(':');
        foreach (var request in requests)
        {
            text.AppendLine().Append("  ").Append(request.Request);
            foreach (var violation in request.Violations)
            {
                text.AppendLine().Append("    - ").Append(violation);
            }
        }

        return text.ToString();
    }
}
