using System.Net;

namespace CmpWaldurAdapter.Ragflow.Api;

/// <summary>
/// RAGFlow answered with a non-zero <c>code</c> in its <c>{code, message, data}</c> envelope (usually with
/// HTTP 200). <see cref="IsTransient"/> tells a failure worth retrying from one that will not heal.
/// </summary>
public sealed class RagflowException : Exception
{
    public RagflowException(int code, string? upstreamMessage, HttpStatusCode status, string path)
        : base($"RAGFlow answered code {code} (HTTP {(int)status}) to {path}: {upstreamMessage}")
    {
        Code = code;
        UpstreamMessage = upstreamMessage ?? string.Empty;
        Status = status;
        Path = path;
    }

    public int Code { get; }

    public string UpstreamMessage { get; }

    public HttpStatusCode Status { get; }

    public string Path { get; }

    /// <summary>
    /// Transient: HTTP 5xx, code 100 (an unhandled exception: database, search engine or storage down), the
    /// code-102 catch-alls "Internal server error" and "Database operation failed", and 105/106. Everything else,
    /// including 401 (the operator's key), is permanent.
    /// </summary>
    public bool IsTransient => RagflowErrors.IsTransient(Code, UpstreamMessage, Status);

    /// <summary>The id or name matches nothing the service account owns ("lacks permission", "doesn't exist").</summary>
    public bool IsNotFound => RagflowErrors.IsNotFound(Code, UpstreamMessage);

    /// <summary>The envelope error behind an exception, if any: Refit wraps what a handler throws in <c>ApiRequestException</c>.</summary>
    public static RagflowException? Find(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is RagflowException ragflow)
            {
                return ragflow;
            }
        }

        return null;
    }
}

/// <summary>The classification rules, kept apart so they can be tested on their own.</summary>
public static class RagflowErrors
{
    public const int Success = 0;
    public const int ExceptionError = 100;
    public const int ArgumentError = 101;
    public const int DataError = 102;
    public const int OperatingError = 103;
    public const int ConnectionError = 105;
    public const int Running = 106;
    public const int PermissionError = 108;
    public const int AuthenticationError = 109;
    public const int Unauthorized = 401;

    public static bool IsTransient(int code, string? message, HttpStatusCode status)
    {
        if ((int)status >= 500 && code != Unauthorized)
        {
            return true;
        }

        return code switch
        {
            ExceptionError or ConnectionError or Running => true,
            DataError => Contains(message, "Internal server error") || Contains(message, "Database operation failed"),
            _ => false,
        };
    }

    public static bool IsNotFound(int code, string? message) =>
        code is DataError or PermissionError
        && (Contains(message, "lacks permission") || Contains(message, "doesn't exist") || Contains(message, "don't own")
            || Contains(message, "do not own") || Contains(message, "not found"));

    private static bool Contains(string? text, string part) => text?.Contains(part, StringComparison.OrdinalIgnoreCase) == true;
}
