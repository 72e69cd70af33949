namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// A remote source could not be read. <see cref="Exception.Message"/> is meant for the buyer: it names
/// the source and what to do, and never contains a token or password.
/// </summary>
public abstract class SourceException : Exception
{
    protected SourceException(SourceKind kind, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
    }

    public SourceKind Kind { get; }

    /// <summary>True when trying again later may succeed without the buyer changing anything.</summary>
    public abstract bool IsTransient { get; }
}

/// <summary>The credentials were refused (401/403): expired, revoked or lacking permission. The buyer must reconnect.</summary>
public sealed class SourceAccessDeniedException(SourceKind kind, string message, Exception? innerException = null)
    : SourceException(kind, message, innerException)
{
    public override bool IsTransient => false;
}

/// <summary>The page, database, space or URL does not exist, or is not shared with the integration.</summary>
public sealed class SourceNotFoundException(SourceKind kind, string message, string? resourceId = null, Exception? innerException = null)
    : SourceException(kind, message, innerException)
{
    /// <summary>The id, key or URL that was not found.</summary>
    public string? ResourceId { get; } = resourceId;

    public override bool IsTransient => false;
}

/// <summary>We refuse to read it: a forbidden address (SSRF), too large, a type we do not accept, too many redirects.</summary>
public sealed class SourceRejectedException(SourceKind kind, string message, Exception? innerException = null)
    : SourceException(kind, message, innerException)
{
    public override bool IsTransient => false;
}

/// <summary>The source did not answer usefully after retries: 5xx, 429, timeouts, network errors.</summary>
public sealed class SourceUnavailableException(SourceKind kind, string message, Exception? innerException = null)
    : SourceException(kind, message, innerException)
{
    public override bool IsTransient => true;
}
