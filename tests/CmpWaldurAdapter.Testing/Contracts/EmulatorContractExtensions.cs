using CmpWaldurAdapter.Emulators;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>The contract checker applied to the sandbox's emulators: what they were asked, and what they answered.</summary>
public static class EmulatorContractExtensions
{
    public static HttpRequestRecord ToHttpRequestRecord(this EmulatorMessage message) =>
        new(message.Method, message.PathAndQuery)
        {
            Headers = message.Headers.ToDictionary(h => h.Key, h => (IReadOnlyList<string>)h.Value, StringComparer.OrdinalIgnoreCase),
            ContentType = message.ContentType,
            Body = message.Body,
        };

    /// <summary>Every exchange whose request or response breaks the spec, with the reasons; empty when all conform.</summary>
    public static IReadOnlyList<string> ContractViolations(this Emulator emulator, OpenApiContract contract)
    {
        var problems = new List<string>();
        foreach (var exchange in emulator.Exchanges)
        {
            var request = exchange.Request.ToHttpRequestRecord();
            problems.AddRange(contract.Validate(request).Select(v => $"request {request}: {v}"));
            problems.AddRange(contract.ValidateResponse(request, exchange.Status, exchange.ResponseContentType, exchange.ResponseBody).Select(p => $"response to {request}: {p}"));
        }

        return problems;
    }
}
