using Serilog.Context;

namespace CmpWaldurAdapter.Observability;

/// <summary>
/// Gives every HTTP request an id, echoed in <c>X-Request-Id</c> and put on every log line written while
/// the request runs. A caller's own id is kept when it is short and plain (so it can be traced across
/// systems); anything else is replaced, so a header never injects text into the logs.
/// </summary>
public static class RequestIdMiddleware
{
    public const string Header = "X-Request-Id";

    public const string LogProperty = "RequestId";

    public static IApplicationBuilder UseRequestIds(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var requestId = IsPlain(context.Request.Headers[Header].ToString()) ? context.Request.Headers[Header].ToString() : context.TraceIdentifier;
        context.TraceIdentifier = requestId;
        context.Response.Headers[Header] = requestId;
        using (LogContext.PushProperty(LogProperty, requestId))
        {
            await next(context);
        }
    });

    internal static bool IsPlain(string value) =>
        value.Length is > 0 and <= 64 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
