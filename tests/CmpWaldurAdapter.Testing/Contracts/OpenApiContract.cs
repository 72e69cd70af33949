using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>How strictly an <see cref="OpenApiContract"/> checks requests.</summary>
public sealed record OpenApiContractOptions
{
    /// <summary>The defaults: no auth enforcement, no base path.</summary>
    public static OpenApiContractOptions Default { get; } = new();

    /// <summary>
    /// When true, a request to an operation with <c>security</c> must carry what one of its
    /// requirements names (a header such as Authorization or x-api-key, or an api-key query
    /// parameter). Off by default so fakes that do not care about auth stay quiet.
    /// </summary>
    public bool EnforceAuth { get; init; }

    /// <summary>
    /// Prefix the fake is mounted under and that the spec's paths do not include (e.g.
    /// <c>/waldur</c>); stripped before matching. Requests outside it are unknown paths.
    /// </summary>
    public string BasePath { get; init; } = "";
}

/// <summary>
/// Checks HTTP requests against an OpenAPI document: path template and method, path, query and
/// header parameters, request body (JSON schema, form fields) and, optionally, authentication.
/// Immutable and thread-safe; build one per spec and share it.
/// </summary>
public sealed partial class OpenApiContract
{
    private static readonly string[] HttpMethods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    // Parameters that OpenAPI says are described elsewhere (content negotiation, security).
    private static readonly HashSet<string> IgnoredHeaderParameters = new(StringComparer.OrdinalIgnoreCase) { "Accept", "Content-Type", "Authorization" };

    private static readonly JsonDocumentOptions StrictJson = new() { AllowDuplicateProperties = false };

    private readonly Lazy<PathTemplate[]> _templates;
    private readonly SchemaValidator _validator;

    /// <summary>Builds a checker for a loaded document.</summary>
    public OpenApiContract(OpenApiDocument document, OpenApiContractOptions? options = null)
        : this(document, options ?? OpenApiContractOptions.Default, new Lazy<PathTemplate[]>(() => Compile(document)), new SchemaValidator(document))
    {
    }

    private OpenApiContract(OpenApiDocument document, OpenApiContractOptions options, Lazy<PathTemplate[]> templates, SchemaValidator validator)
    {
        Document = document;
        Options = options;
        _templates = templates;
        _validator = validator;
    }

    /// <summary>The spec checked against.</summary>
    public OpenApiDocument Document { get; }

    /// <summary>Options in effect.</summary>
    public OpenApiContractOptions Options { get; }

    /// <summary>The spec's name, for messages.</summary>
    public string Name => Document.Name;

    /// <summary>Loads a spec file (cached, see <see cref="OpenApiDocument.Load"/>).</summary>
    public static OpenApiContract Load(string path, OpenApiContractOptions? options = null) =>
        new(OpenApiDocument.Load(path), options);

    /// <summary>Builds a checker from spec text (JSON or YAML); handy for small synthetic specs.</summary>
    public static OpenApiContract Parse(string specText, OpenApiContractOptions? options = null, string name = "inline spec") =>
        new(OpenApiDocument.Parse(specText, name), options);

    /// <summary>The same spec (and compiled path table) with other options.</summary>
    public OpenApiContract WithOptions(OpenApiContractOptions options) => new(Document, options, _templates, _validator);

    /// <summary>The same spec with <see cref="OpenApiContractOptions.EnforceAuth"/> on.</summary>
    public OpenApiContract WithAuthEnforced() => WithOptions(Options with { EnforceAuth = true });

    /// <summary>
    /// Every way a JSON value (an example response, a serialized DTO) breaks a schema of this document,
    /// named by reference (e.g. <c>#/components/schemas/Envelope</c>); empty when it fits.
    /// </summary>
    public IReadOnlyList<string> ValidateInstance(JsonNode? instance, string schemaReference)
    {
        if (!Document.TryResolve(schemaReference, out var schema) || schema is null)
        {
            throw new ArgumentException($"{Name} has no schema at {schemaReference}", nameof(schemaReference));
        }

        var errors = new List<SchemaValidator.Error>();
        _validator.Validate(instance, new JsonObject { ["$ref"] = schemaReference }, "$", errors);
        return errors.Select(e => $"{e.Location}: {e.Message}").ToList();
    }

    /// <summary>Throws <see cref="ContractViolationException"/> when the request breaks the spec.</summary>
    public void AssertConforms(HttpRequestRecord request)
    {
        var violations = Validate(request);
        if (violations.Count > 0)
        {
            throw new ContractViolationException(Name, 1, [new NonConformingRequest(request, violations)]);
        }
    }

    /// <summary>Every way the request breaks the spec; empty when it is allowed.</summary>
    public IReadOnlyList<ContractViolation> Validate(HttpRequestRecord request)
    {
        var violations = new List<ContractViolation>();
        var method = request.Method.ToLowerInvariant();
        if (StripBasePath(request.Path, violations) is not { } path)
        {
            return violations;
        }

        if (FindOperation(path, method, violations) is not { } match)
        {
            return violations;
        }

        var operationName = $"{method.ToUpperInvariant()} {match.Template.Template}";
        violations.AddRange(match.PathErrors);
        var security = EffectiveSecurity(match.Operation);
        ValidateQuery(request, match.Parameters, security, operationName, violations);
        ValidateHeaders(request, match.Parameters, violations);
        ValidateBody(request, match.Operation, operationName, violations);
        ValidateAuth(request, security, operationName, violations);
        return violations;
    }

    private string? StripBasePath(string path, List<ContractViolation> violations)
    {
        var basePath = Options.BasePath.TrimEnd('/');
        if (basePath.Length == 0)
        {
            return path;
        }

        if (path == basePath)
        {
            return "/";
        }

        if (path.StartsWith(basePath + "/", StringComparison.Ordinal))
        {
            return path[basePath.Length..];
        }

        violations.Add(new(ContractViolationKind.UnknownPath, "path", $"'{path}' is outside the base path '{basePath}' of {Name}"));
        return null;
    }

    private OperationMatch? FindOperation(string path, string method, List<ContractViolation> violations)
    {
        var candidates = _templates.Value
            .Select(template => (Template: template, Match: template.Regex.Match(path)))
            .Where(c => c.Match.Success)
            .ToList();

        if (candidates.Count == 0)
        {
            ReportUnknownPath(path, violations);
            return null;
        }

        OperationMatch? first = null;
        foreach (var (template, regexMatch) in candidates)
        {
            if (template.Item[method] is not JsonObject operation)
            {
                continue;
            }

            var parameters = MergeParameters(template.Item["parameters"], operation["parameters"]);
            var pathErrors = ValidatePathParameters(template, regexMatch, parameters);
            var match = new OperationMatch(template, operation, parameters, pathErrors);
            if (pathErrors.Count == 0)
            {
                return match; // Most specific template whose parameters fit.
            }

            first ??= match;
        }

        if (first is not null)
        {
            return first;
        }

        var best = candidates[0].Template;
        var declared = HttpMethods.Where(m => best.Item[m] is JsonObject).Select(m => m.ToUpperInvariant());
        violations.Add(new(
            ContractViolationKind.MethodNotAllowed,
            "method",
            $"{method.ToUpperInvariant()} is not declared for {best.Template} in {Name}; declared: {string.Join(", ", declared)}"));
        return null;
    }

    private void ReportUnknownPath(string path, List<ContractViolation> violations)
    {
        var toggled = path.EndsWith('/') && path.Length > 1 ? path[..^1] : path + "/";
        if (_templates.Value.FirstOrDefault(t => t.Regex.IsMatch(toggled)) is { } near)
        {
            violations.Add(new(
                ContractViolationKind.TrailingSlashMismatch,
                "path",
                $"'{path}' is not in {Name}, but {near.Template} is: the trailing slash differs"));
            return;
        }

        var closest = _templates.Value
            .Select(t => (t.Template, Common: CommonPrefixLength(t.Template, path)))
            .Where(t => t.Common > 1)
            .OrderByDescending(t => t.Common)
            .Take(3)
            .Select(t => t.Template)
            .ToList();
        var hint = closest.Count > 0 ? $"; closest: {string.Join(", ", closest)}" : "";
        violations.Add(new(ContractViolationKind.UnknownPath, "path", $"no path of {Name} matches '{path}'{hint}"));
    }

    private List<ContractViolation> ValidatePathParameters(PathTemplate template, Match match, List<JsonObject> parameters)
    {
        var violations = new List<ContractViolation>();
        for (var i = 0; i < template.ParameterNames.Length; i++)
        {
            var name = template.ParameterNames[i];
            var value = Uri.UnescapeDataString(match.Groups[i + 1].Value);
            var declaration = parameters.FirstOrDefault(p => In(p) == "path" && NameOf(p) == name);
            var errors = new List<SchemaValidator.Error>();
            _validator.ValidateRaw(value, declaration?["schema"], $"path.{name}", errors);
            violations.AddRange(errors.Select(e => new ContractViolation(
                ContractViolationKind.InvalidPathParameter, e.Location, $"path parameter {{{name}}} of {template.Template}: {e.Message}")));
        }

        return violations;
    }

    private void ValidateQuery(HttpRequestRecord request, List<JsonObject> parameters, JsonArray? security, string operationName, List<ContractViolation> violations)
    {
        var declared = parameters.Where(p => In(p) == "query").ToDictionary(p => NameOf(p)!, StringComparer.Ordinal);
        var received = ParseForm(request.Query)
            .GroupBy(pair => pair.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(pair => pair.Value).ToList(), StringComparer.Ordinal);
        var apiKeyQueryNames = SecuritySchemes(security)
            .Where(s => SchemaValidator.StringOf(s["type"]) == "apiKey" && SchemaValidator.StringOf(s["in"]) == "query")
            .Select(s => SchemaValidator.StringOf(s["name"]))
            .OfType<string>()
            .ToHashSet(StringComparer.Ordinal);

        foreach (var (name, values) in received)
        {
            if (!declared.TryGetValue(name, out var parameter))
            {
                if (apiKeyQueryNames.Contains(name) || IsDeepObjectKey(name, declared.Values))
                {
                    continue;
                }

                var known = declared.Count == 0 ? "none" : string.Join(", ", declared.Keys.Order(StringComparer.Ordinal));
                violations.Add(new(ContractViolationKind.UnknownQueryParameter, $"query.{name}", $"query parameter '{name}' is not declared for {operationName}; declared: {known}"));
                continue;
            }

            var schema = parameter["schema"];
            var isArray = _validator.TryGetArrayItems(schema, out var items);
            var explode = parameter["explode"] is JsonValue e && e.GetValueKind() is JsonValueKind.True or JsonValueKind.False
                ? e.GetValueKind() == JsonValueKind.True
                : (bool?)null;
            if (values.Count > 1 && !isArray && explode != true)
            {
                violations.Add(new(
                    ContractViolationKind.RepeatedQueryParameter,
                    $"query.{name}",
                    $"query parameter '{name}' is repeated ({values.Count} times) but is neither an array nor explode: true"));
            }

            if (schema is null)
            {
                continue; // Declared with 'content' instead of 'schema': serialisation not modelled.
            }

            var style = SchemaValidator.StringOf(parameter["style"]) ?? "form";
            var checkedValues = values;
            var itemSchema = schema;
            if (isArray)
            {
                itemSchema = items;
                if (!(explode ?? style == "form"))
                {
                    // Non-exploded arrays travel as one delimited value.
                    var delimiter = style switch { "spaceDelimited" => ' ', "pipeDelimited" => '|', _ => ',' };
                    checkedValues = values.SelectMany(v => v.Split(delimiter)).ToList();
                }
            }

            var errors = new List<SchemaValidator.Error>();
            foreach (var value in checkedValues)
            {
                _validator.ValidateRaw(value, itemSchema, $"query.{name}", errors);
            }

            violations.AddRange(errors.Select(err => new ContractViolation(
                ContractViolationKind.InvalidQueryParameter, err.Location, $"query parameter '{name}': {err.Message}")));
        }

        foreach (var (name, parameter) in declared)
        {
            if (SchemaValidator.IsTrue(parameter, "required") && !received.ContainsKey(name))
            {
                violations.Add(new(ContractViolationKind.MissingQueryParameter, $"query.{name}", $"required query parameter '{name}' is missing for {operationName}"));
            }
        }
    }

    private void ValidateHeaders(HttpRequestRecord request, List<JsonObject> parameters, List<ContractViolation> violations)
    {
        foreach (var parameter in parameters.Where(p => In(p) == "header"))
        {
            var name = NameOf(parameter)!;
            if (IgnoredHeaderParameters.Contains(name))
            {
                continue;
            }

            var value = request.GetHeader(name);
            if (value is null)
            {
                if (SchemaValidator.IsTrue(parameter, "required"))
                {
                    violations.Add(new(ContractViolationKind.MissingHeaderParameter, $"header.{name}", $"required header '{name}' is missing"));
                }

                continue;
            }

            var errors = new List<SchemaValidator.Error>();
            _validator.ValidateRaw(value, parameter["schema"], $"header.{name}", errors);
            violations.AddRange(errors.Select(e => new ContractViolation(ContractViolationKind.InvalidHeaderParameter, e.Location, $"header '{name}': {e.Message}")));
        }
    }

    private void ValidateBody(HttpRequestRecord request, JsonObject operation, string operationName, List<ContractViolation> violations)
    {
        var body = request.Body;
        var hasBody = !string.IsNullOrWhiteSpace(body);
        var requestBody = operation["requestBody"] is { } declared ? Resolve(declared) : null;
        if (requestBody is null)
        {
            if (hasBody && !IsEmptyJsonObject(body!))
            {
                violations.Add(new(ContractViolationKind.UnexpectedBody, "body", $"{operationName} declares no request body, but one was sent: {Snippet(body!)}"));
            }

            return;
        }

        var content = requestBody["content"] as JsonObject;
        var accepted = content is null ? "" : string.Join(", ", content.Select(c => c.Key));
        if (!hasBody)
        {
            if (SchemaValidator.IsTrue(requestBody, "required"))
            {
                violations.Add(new(ContractViolationKind.MissingBody, "body", $"{operationName} requires a request body ({accepted})"));
            }

            return;
        }

        if (content is null || content.Count == 0)
        {
            return;
        }

        var mediaType = request.EffectiveContentType?.Split(';')[0].Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(mediaType))
        {
            violations.Add(new(ContractViolationKind.UnsupportedContentType, "body", $"a body was sent without Content-Type; {operationName} accepts {accepted}"));
            return;
        }

        if (FindMediaType(content, mediaType) is not { } media)
        {
            violations.Add(new(ContractViolationKind.UnsupportedContentType, "body", $"Content-Type '{mediaType}' is not accepted by {operationName}; it accepts {accepted}"));
            return;
        }

        var schema = media["schema"];
        if (mediaType == "application/json" || mediaType.EndsWith("+json", StringComparison.Ordinal))
        {
            JsonNode? json;
            try
            {
                // Duplicate keys would otherwise surface later as an ArgumentException.
                json = JsonNode.Parse(body!, documentOptions: StrictJson);
            }
            catch (JsonException ex)
            {
                violations.Add(new(ContractViolationKind.MalformedBody, "body", $"body is not valid JSON ({ex.Message}): {Snippet(body!)}"));
                return;
            }

            var errors = new List<SchemaValidator.Error>();
            _validator.Validate(json, schema, "body", errors);
            violations.AddRange(errors.Select(e => new ContractViolation(ContractViolationKind.BodySchema, e.Location, e.Message)));
            return;
        }

        IEnumerable<string>? fieldNames = mediaType switch
        {
            "application/x-www-form-urlencoded" => ParseForm(body!).Select(pair => pair.Key),
            "multipart/form-data" => MultipartFieldName().Matches(body!).Select(m => m.Groups["name"].Value),
            _ => null, // Other media types (octet-stream, text) carry no field structure to check.
        };
        if (fieldNames is null)
        {
            return;
        }

        var present = fieldNames.ToHashSet(StringComparer.Ordinal);
        foreach (var name in _validator.RequiredProperties(schema).Where(name => !present.Contains(name)))
        {
            violations.Add(new(ContractViolationKind.BodySchema, $"body.{name}", $"required {mediaType} field '{name}' is missing"));
        }
    }

    private void ValidateAuth(HttpRequestRecord request, JsonArray? security, string operationName, List<ContractViolation> violations)
    {
        if (!Options.EnforceAuth || security is null || security.Count == 0)
        {
            return;
        }

        var alternatives = new List<string>();
        foreach (var requirement in security.OfType<JsonObject>())
        {
            if (requirement.Count == 0)
            {
                return; // {} means anonymous access is allowed.
            }

            var unmet = requirement.Select(r => r.Key).Where(name => !IsSatisfied(request, name)).ToList();
            if (unmet.Count == 0)
            {
                return;
            }

            alternatives.Add(string.Join(" + ", requirement.Select(r => DescribeScheme(r.Key))));
        }

        violations.Add(new(ContractViolationKind.MissingAuthentication, "auth", $"{operationName} requires one of: {string.Join("; ", alternatives)}"));
    }

    private bool IsSatisfied(HttpRequestRecord request, string schemeName)
    {
        if (SecurityScheme(schemeName) is not { } scheme)
        {
            return false;
        }

        var authorization = request.GetHeader("Authorization");
        var name = SchemaValidator.StringOf(scheme["name"]) ?? "";
        return SchemaValidator.StringOf(scheme["type"]) switch
        {
            "apiKey" => SchemaValidator.StringOf(scheme["in"]) switch
            {
                "header" => !string.IsNullOrEmpty(request.GetHeader(name)),
                "query" => ParseForm(request.Query).Any(pair => pair.Key == name && pair.Value.Length > 0),
                "cookie" => request.GetHeader("Cookie")?.Split(';').Any(c => c.Trim().StartsWith(name + "=", StringComparison.Ordinal)) == true,
                _ => false,
            },
            "http" => authorization is not null && (SchemaValidator.StringOf(scheme["scheme"])?.ToLowerInvariant() switch
            {
                "bearer" => authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase),
                "basic" => authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase),
                _ => authorization.Length > 0,
            }),
            "oauth2" or "openIdConnect" => authorization?.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) == true,
            "mutualTLS" => true, // Not visible in a recorded request.
            _ => false,
        };
    }

    private string DescribeScheme(string schemeName)
    {
        if (SecurityScheme(schemeName) is not { } scheme)
        {
            return $"{schemeName} (undefined scheme)";
        }

        return SchemaValidator.StringOf(scheme["type"]) switch
        {
            "apiKey" => $"{schemeName} ({SchemaValidator.StringOf(scheme["in"])} '{SchemaValidator.StringOf(scheme["name"])}')",
            "http" => $"{schemeName} (Authorization: {SchemaValidator.StringOf(scheme["scheme"])})",
            var type => $"{schemeName} (Authorization: Bearer, {type})",
        };
    }

    private JsonArray? EffectiveSecurity(JsonObject operation) =>
        operation["security"] as JsonArray ?? Document.Root["security"] as JsonArray;

    private IEnumerable<JsonObject> SecuritySchemes(JsonArray? security) =>
        security is null
            ? []
            : security.OfType<JsonObject>().SelectMany(r => r.Select(s => s.Key)).Distinct(StringComparer.Ordinal)
                .Select(SecurityScheme).OfType<JsonObject>();

    private JsonObject? SecurityScheme(string name) =>
        Document.Root["components"]?["securitySchemes"]?[name] is JsonObject scheme ? Resolve(scheme) : null;

    private List<JsonObject> MergeParameters(JsonNode? pathLevel, JsonNode? operationLevel)
    {
        // Operation-level parameters override path-level ones with the same name and location.
        var merged = new List<JsonObject>();
        foreach (var list in new[] { pathLevel, operationLevel })
        {
            foreach (var parameter in (list as JsonArray ?? []).Select(p => Resolve(p!)).OfType<JsonObject>())
            {
                merged.RemoveAll(p => NameOf(p) == NameOf(parameter) && In(p) == In(parameter));
                merged.Add(parameter);
            }
        }

        return merged;
    }

    private JsonObject? Resolve(JsonNode node)
    {
        var current = node as JsonObject;
        for (var hops = 0; hops < 32 && current is not null && SchemaValidator.RefOf(current) is { } reference; hops++)
        {
            if (!Document.TryResolve(reference, out var target))
            {
                throw new InvalidDataException($"{Name}: $ref '{reference}' does not resolve");
            }

            current = target as JsonObject;
        }

        return current;
    }

    private static JsonObject? FindMediaType(JsonObject content, string mediaType)
    {
        var slash = mediaType.IndexOf('/', StringComparison.Ordinal);
        var wildcard = slash > 0 ? mediaType[..slash] + "/*" : "*/*";
        foreach (var candidate in new[] { mediaType, wildcard, "*/*" })
        {
            foreach (var (key, value) in content)
            {
                if (string.Equals(key.Split(';')[0].Trim(), candidate, StringComparison.OrdinalIgnoreCase) && value is JsonObject media)
                {
                    return media;
                }
            }
        }

        return null;
    }

    private static bool IsDeepObjectKey(string key, IEnumerable<JsonObject> declared) =>
        declared.Any(p => SchemaValidator.StringOf(p["style"]) == "deepObject" && key.StartsWith(NameOf(p) + "[", StringComparison.Ordinal));

    private static bool IsEmptyJsonObject(string body)
    {
        try
        {
            return JsonNode.Parse(body) is JsonObject { Count: 0 };
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Splits <c>a=1&amp;b=x+y</c> into decoded pairs (form encoding: '+' is a space).</summary>
    internal static List<KeyValuePair<string, string>> ParseForm(string text)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var part in text.Split('&'))
        {
            if (part.Length == 0)
            {
                continue;
            }

            var equals = part.IndexOf('=', StringComparison.Ordinal);
            var key = equals < 0 ? part : part[..equals];
            var value = equals < 0 ? "" : part[(equals + 1)..];
            pairs.Add(new(Decode(key), Decode(value)));
        }

        return pairs;

        static string Decode(string text) => Uri.UnescapeDataString(text.Replace('+', ' '));
    }

    private static string? In(JsonObject parameter) => SchemaValidator.StringOf(parameter["in"]);

    private static string? NameOf(JsonObject parameter) => SchemaValidator.StringOf(parameter["name"]);

    private static string Snippet(string body)
    {
        var flat = body.ReplaceLineEndings(" ");
        return flat.Length <= 120 ? flat : flat[..117] + "...";
    }

    private static int CommonPrefixLength(string a, string b)
    {
        var length = 0;
        while (length < a.Length && length < b.Length && a[length] == b[length])
        {
            length++;
        }

        return length;
    }

    private static PathTemplate[] Compile(OpenApiDocument document)
    {
        if (document.Root["paths"] is not JsonObject paths)
        {
            return [];
        }

        var templates = new List<PathTemplate>();
        foreach (var (template, item) in paths)
        {
            if (item is not JsonObject pathItem)
            {
                continue;
            }

            var names = new List<string>();
            var pattern = new StringBuilder("^");
            var literal = 0;
            var position = 0;
            foreach (Match parameter in TemplateParameter().Matches(template))
            {
                pattern.Append(Regex.Escape(template[position..parameter.Index]));
                literal += parameter.Index - position;
                pattern.Append("([^/]+)"); // Non-empty, one segment (or part of one).
                names.Add(parameter.Groups["name"].Value);
                position = parameter.Index + parameter.Length;
            }

            pattern.Append(Regex.Escape(template[position..])).Append('$');
            literal += template.Length - position;
            templates.Add(new PathTemplate(template, new Regex(pattern.ToString(), RegexOptions.CultureInvariant), [.. names], pathItem, literal));
        }

        // OpenAPI: concrete paths win over templated ones (/users/me before /users/{id}).
        return [.. templates.OrderBy(t => t.ParameterNames.Length).ThenByDescending(t => t.LiteralLength)];
    }

    [GeneratedRegex(@"\{(?<name>[^}/]+)\}", RegexOptions.CultureInvariant)]
    private static partial Regex TemplateParameter();

    // Content-Disposition parameters are tokens or quoted strings; .NET's MultipartFormDataContent writes bare tokens.
    [GeneratedRegex(@"^Content-Disposition:[^\r\n]*?\bname=(?:""(?<name>[^""]*)""|(?<name>[^;\s""]+))", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase | RegexOptions.Multiline)]
    private static partial Regex MultipartFieldName();

    private sealed record PathTemplate(string Template, Regex Regex, string[] ParameterNames, JsonObject Item, int LiteralLength);

    private sealed record OperationMatch(PathTemplate Template, JsonObject Operation, List<JsonObject> Parameters, List<ContractViolation> PathErrors);
}
