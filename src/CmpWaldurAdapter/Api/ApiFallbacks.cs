using CmpWaldurAdapter.Observability;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// What <c>/v1</c> answers when no endpoint wrote a body: an unknown path (404), a wrong method (405) or a failure
/// nothing handled (500) still reach OpenAI clients in OpenAI's error shape, not as an empty response their SDKs
/// report as a parse error. Pages and other paths keep their own responses.
/// </summary>
public static class ApiFallbacks
{
    public static WebApplication UseApiFallbacks(this WebApplication app)
    {
        // The middleware logs the exception itself (with the request id); the body names no detail of it.
        app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = WriteFailureAsync });
        app.UseStatusCodePages(context => WriteStatusAsync(context.HttpContext));
        return app;
    }

    private static bool IsApi(HttpContext http) => http.Request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase);

    private static Task WriteFailureAsync(HttpContext http)
    {
        // The handler cleared the response, the request id header with it.
        http.Response.Headers[RequestIdMiddleware.Header] = http.TraceIdentifier;
        if (!IsApi(http))
        {
            http.Response.ContentType = "text/plain; charset=utf-8";
            return http.Response.WriteAsync($"Something went wrong on our side. Request id: {http.TraceIdentifier}");
        }

        return http.Response.WriteAsJsonAsync(
            new ApiErrorBody(new ApiError($"The server failed to handle the request; nothing was charged for a failed message. Request id: {http.TraceIdentifier}", "server_error", "internal_error", null)),
            ApiJson.Options);
    }

    private static string Shortened(PathString path) => path.Value is { Length: > 120 } value ? value[..120] + "…" : path.Value ?? "/";

    private static Task WriteStatusAsync(HttpContext http)
    {
        if (!IsApi(http))
        {
            return Task.CompletedTask;
        }

        var status = http.Response.StatusCode;
        var (message, type, code) = status switch
        {
            StatusCodes.Status404NotFound => ($"Unknown API path {http.Request.Method} {Shortened(http.Request.Path)}.", "invalid_request_error", "unknown_url"),
            StatusCodes.Status405MethodNotAllowed => ($"{http.Request.Method} is not allowed on {Shortened(http.Request.Path)}.", "invalid_request_error", "method_not_allowed"),
            StatusCodes.Status415UnsupportedMediaType => ("Send the body as application/json.", "invalid_request_error", "unsupported_media_type"),
            >= 500 => ("The server failed to handle the request.", "server_error", "internal_error"),
            _ => ("The request was refused.", "invalid_request_error", "invalid_request"),
        };
        return http.Response.WriteAsJsonAsync(new ApiErrorBody(new ApiError(message, type, code, null)), ApiJson.Options);
    }
}
