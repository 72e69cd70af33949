namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>What part of the contract a request broke.</summary>
public enum ContractViolationKind
{
    /// <summary>No templated path of the spec matches.</summary>
    UnknownPath,

    /// <summary>The path matches only with a trailing slash added or removed.</summary>
    TrailingSlashMismatch,

    /// <summary>The path exists but not with this method.</summary>
    MethodNotAllowed,

    /// <summary>A path parameter does not fit its schema (e.g. not a UUID).</summary>
    InvalidPathParameter,

    /// <summary>A query parameter the operation does not declare.</summary>
    UnknownQueryParameter,

    /// <summary>A query key repeated for a parameter that is neither an array nor exploded.</summary>
    RepeatedQueryParameter,

    /// <summary>A query value outside its schema (type, enum, format).</summary>
    InvalidQueryParameter,

    /// <summary>A required query parameter is absent.</summary>
    MissingQueryParameter,

    /// <summary>A required header parameter is absent.</summary>
    MissingHeaderParameter,

    /// <summary>A header parameter value outside its schema.</summary>
    InvalidHeaderParameter,

    /// <summary>A body whose content type the operation does not accept (or none given).</summary>
    UnsupportedContentType,

    /// <summary>The operation requires a body and none was sent.</summary>
    MissingBody,

    /// <summary>A body sent to an operation that declares none.</summary>
    UnexpectedBody,

    /// <summary>A JSON body that does not parse.</summary>
    MalformedBody,

    /// <summary>The body does not conform to the request schema.</summary>
    BodySchema,

    /// <summary>None of the operation's security requirements is met.</summary>
    MissingAuthentication,
}

/// <summary>One way a request breaks the spec.</summary>
/// <param name="Kind">Category, for assertions.</param>
/// <param name="Location">Where: <c>path</c>, <c>path.uuid</c>, <c>query.state</c>, <c>header.X</c>, <c>body</c>, <c>body.usages[0].amount</c>, <c>auth</c>.</param>
/// <param name="Message">Human-readable explanation.</param>
public sealed record ContractViolation(ContractViolationKind Kind, string Location, string Message)
{
    public override string ToString() => $"{Location}: {Message} [{Kind}]";
}

/// <summary>A request together with every way it breaks the spec.</summary>
public sealed record NonConformingRequest(HttpRequestRecord Request, IReadOnlyList<ContractViolation> Violations)
{
    public override string ToString() =>
        $"{Request}{Environment.NewLine}{string.Join(Environment.NewLine, Violations.Select(v => "    - " + v))}";
}
