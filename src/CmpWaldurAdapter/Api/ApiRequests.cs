using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Reads JSON request bodies strictly and safely: declared content type, a size limit enforced while
/// reading, well-formed UTF-8 JSON, no unknown members (unless a type opts in). Every failure becomes a
/// clear 4xx in the API's error shape, and nothing is changed.
/// </summary>
public static class ApiRequests
{
    public const int DefaultMaxBytes = 256 * 1024;

    private static readonly JsonSerializerOptions Strict = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
    };

    private static readonly JsonSerializerOptions Lenient = new(JsonSerializerDefaults.Web);

    public static async Task<(T? Body, IResult? Error)> ReadJsonAsync<T>(HttpContext http, int maxBytes = DefaultMaxBytes, bool allowUnknownMembers = false)
        where T : class
    {
        var (body, _, error) = await ReadJsonWithBytesAsync<T>(http, maxBytes, allowUnknownMembers);
        return (body, error);
    }

    /// <summary>As <see cref="ReadJsonAsync{T}"/>, also returning the raw bytes (for request fingerprints).</summary>
    public static async Task<(T? Body, byte[] Bytes, IResult? Error)> ReadJsonWithBytesAsync<T>(HttpContext http, int maxBytes = DefaultMaxBytes, bool allowUnknownMembers = false)
        where T : class
    {
        var request = http.Request;
        if (request.ContentLength is > 0 && request.ContentType is { } contentType && !contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, [], ApiErrors.Problem(StatusCodes.Status415UnsupportedMediaType, "Send the body as JSON with Content-Type: application/json.", "invalid_request_error", "unsupported_media_type"));
        }

        if (request.ContentLength > maxBytes)
        {
            return (null, [], TooLarge(maxBytes));
        }

        var bytes = request.ContentLength is { } length
            ? await ReadExactlyAsync(request.Body, (int)length, http.RequestAborted)
            : await ReadToEndAsync(request.Body, maxBytes, http.RequestAborted);
        if (bytes is null)
        {
            return (null, [], TooLarge(maxBytes));
        }

        if (bytes.Length == 0)
        {
            return (null, [], ApiErrors.InvalidRequest("The request body is empty; send a JSON object."));
        }

        // The serializer checks UTF-8 inside a string only when the string is read, which for a JsonElement is
        // after this method returns, where it would surface as a 500.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            return (null, bytes, ApiErrors.InvalidRequest("The request body is not valid UTF-8.", code: "invalid_json"));
        }

        try
        {
            var body = JsonSerializer.Deserialize<T>(bytes, allowUnknownMembers ? Lenient : Strict);
            return body is null ? (null, bytes, ApiErrors.InvalidRequest("The request body must be a JSON object.")) : (body, bytes, null);
        }
        catch (JsonException exception)
        {
            var where = exception.Path is { Length: > 1 } path ? $" at {path}" : string.Empty;
            var detail = exception.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? $"Unknown field{where}."
                : $"The body is not valid JSON{where} (line {exception.LineNumber + 1}, position {exception.BytePositionInLine + 1}).";
            return (null, bytes, ApiErrors.InvalidRequest(detail, exception.Path?.TrimStart('$', '.'), "invalid_json"));
        }
    }

    /// <summary>A body of declared length, read into one array of that size (the server never reads past it); a shorter body is kept as it came.</summary>
    private static async Task<byte[]> ReadExactlyAsync(Stream body, int length, CancellationToken cancellationToken)
    {
        var bytes = new byte[length];
        var read = await body.ReadAtLeastAsync(bytes, length, throwOnEndOfStream: false, cancellationToken);
        return read == length ? bytes : bytes[..read];
    }

    /// <summary>A chunked body, read through a pooled buffer; null once it passes <paramref name="maxBytes"/>.</summary>
    private static async Task<byte[]?> ReadToEndAsync(Stream body, int maxBytes, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            int read;
            while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > maxBytes)
                {
                    return null;
                }

                buffer.Write(chunk, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return buffer.ToArray();
    }

    private static IResult TooLarge(int maxBytes) =>
        ApiErrors.Problem(StatusCodes.Status413PayloadTooLarge, $"The request body is larger than {maxBytes / 1024} KB.", "invalid_request_error", "request_too_large");
}
