using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Api;

/// <summary>The error body of every <c>/v1</c> endpoint, in OpenAI's shape so the official SDKs surface it as their own errors.</summary>
public sealed record ApiErrorBody([property: JsonPropertyName("error")] ApiError Error);

public sealed record ApiError(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("code"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code,
    [property: JsonPropertyName("param"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param);

/// <summary>Builds API errors. Messages are written for the caller and never echo a key or token.</summary>
public static class ApiErrors
{
    public static IResult Problem(int status, string message, string type, string? code = null, string? param = null, Action<HttpResponse>? headers = null) =>
        new ErrorResult(status, new ApiErrorBody(new ApiError(message, type, code, param)), headers);

    public static IResult InvalidRequest(string message, string? param = null, string code = "invalid_request") =>
        Problem(StatusCodes.Status400BadRequest, message, "invalid_request_error", code, param);

    public static IResult InvalidKey() =>
        Problem(StatusCodes.Status401Unauthorized, "Invalid API key. Use a secret key of this subscription: Authorization: Bearer sk_live_…", "invalid_request_error", "invalid_api_key");

    public static IResult PublishableKey() =>
        Problem(StatusCodes.Status403Forbidden, "Publishable keys (pk_live_…) only work in the website widget. Use a secret key (sk_live_…) on servers.", "permission_error", "publishable_key_not_allowed");

    public static IResult SubscriptionSuspended(string reason) =>
        Problem(StatusCodes.Status403Forbidden, reason, "permission_error", "subscription_suspended");

    /// <summary>A 429 with Retry-After in whole seconds (at least 1); <paramref name="message"/> gets those seconds.</summary>
    public static IResult TooManyRequests(TimeSpan retryAfter, Func<int, string> message, string code = "rate_limit_exceeded")
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        return Problem(StatusCodes.Status429TooManyRequests, message(seconds), "requests", code,
            headers: r => r.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>402 for an action the organization's credits cannot cover: SDKs must not retry it.</summary>
    public static IResult InsufficientCredits(string message) =>
        Problem(StatusCodes.Status402PaymentRequired, message, "insufficient_quota", "insufficient_credits", headers: r => r.Headers["x-should-retry"] = "false");

    /// <summary>Why a subscription whose offering the organization's Waldur customer credit is not limited to is refused (402).</summary>
    public const string CreditNotCoveringAgent =
        "Your organization's credit in Waldur is limited to other offerings and does not cover this agent; nothing was charged. Ask your organization's owner to extend the credit to this agent.";

    /// <summary>503 when Waldur funding cannot be read: a retryable outage, not a lack of credits.</summary>
    public static IResult CreditsUnavailable() =>
        Problem(StatusCodes.Status503ServiceUnavailable, "The organization's credits cannot be read from Waldur right now; nothing was charged, retry shortly.",
            "server_error", "credits_unavailable", headers: r => r.Headers.RetryAfter = "30");

    public static IResult NotFound(string message, string code = "not_found", string? param = null) =>
        Problem(StatusCodes.Status404NotFound, message, "invalid_request_error", code, param);

    private sealed class ErrorResult(int status, ApiErrorBody body, Action<HttpResponse>? headers) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            headers?.Invoke(httpContext.Response);
            return httpContext.Response.WriteAsJsonAsync(body, ApiJson.Options);
        }
    }
}

public static class ApiJson
{
    public static readonly System.Text.Json.JsonSerializerOptions Options = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
