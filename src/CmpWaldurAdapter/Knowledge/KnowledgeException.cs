namespace CmpWaldurAdapter.Knowledge;

/// <summary>
/// A knowledge-base request that cannot be done, with the HTTP status and error code the API answers.
/// The message is for the buyer and never contains a token.
/// </summary>
public sealed class KnowledgeException(int status, string code, string message, string? param = null, Exception? innerException = null)
    : Exception(message, innerException)
{
    public int Status { get; } = status;

    public string Code { get; } = code;

    public string? Param { get; } = param;

    /// <summary>OpenAI's error type for the status.</summary>
    public string Type => Status switch
    {
        StatusCodes.Status401Unauthorized => "authentication_error",
        StatusCodes.Status402PaymentRequired => "insufficient_quota",
        StatusCodes.Status403Forbidden => "permission_error",
        StatusCodes.Status404NotFound => "invalid_request_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };
}
