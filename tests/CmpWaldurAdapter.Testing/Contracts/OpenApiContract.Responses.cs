using System.Text.Json;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>Response checks: what an emulated upstream answers must fit the response the spec declares.</summary>
public sealed partial class OpenApiContract
{
    /// <summary>
    /// Every way a response breaks the spec for the request it answered: a status the operation does not declare
    /// (nor a <c>default</c>), or a JSON body outside the declared schema. Empty when it fits; the request itself
    /// is checked by <see cref="Validate"/>.
    /// </summary>
    public IReadOnlyList<string> ValidateResponse(HttpRequestRecord request, int status, string? contentType, string? body)
    {
        var problems = new List<string>();
        var ignored = new List<ContractViolation>();
        var method = request.Method.ToLowerInvariant();
        if (StripBasePath(request.Path, ignored) is not { } path || FindOperation(path, method, ignored) is not { } match)
        {
            return [$"{request}: no operation of {Name} answers it"];
        }

        var operationName = $"{method.ToUpperInvariant()} {match.Template.Template}";
        var responses = match.Operation["responses"] as JsonObject;
        var declared = responses?[status.ToString(System.Globalization.CultureInfo.InvariantCulture)]
            ?? responses?[$"{status / 100}XX"]
            ?? responses?["default"];
        if (declared is null)
        {
            return [$"{operationName} declares no {status} response (declared: {string.Join(", ", responses?.Select(r => r.Key) ?? [])})"];
        }

        var response = Resolve(declared);
        if (response?["content"] is not JsonObject content || content.Count == 0 || string.IsNullOrWhiteSpace(body))
        {
            return problems;
        }

        var mediaType = contentType?.Split(';')[0].Trim().ToLowerInvariant() ?? "application/json";
        if (FindMediaType(content, mediaType) is not { } media)
        {
            return [$"{operationName} {status}: Content-Type '{mediaType}' is not declared ({string.Join(", ", content.Select(c => c.Key))})"];
        }

        if (!mediaType.EndsWith("json", StringComparison.Ordinal) || media["schema"] is not JsonNode schema)
        {
            return problems;
        }

        JsonNode? instance;
        try
        {
            instance = JsonNode.Parse(body);
        }
        catch (JsonException exception)
        {
            return [$"{operationName} {status}: the body is not JSON ({exception.Message})"];
        }

        var errors = new List<SchemaValidator.Error>();
        _validator.Validate(instance, schema, "$", errors);
        problems.AddRange(errors.Select(e => $"{operationName} {status} {e.Location}: {e.Message}"));
        return problems;
    }
}
