namespace CmpWaldurAdapter.Capabilities;

/// <summary>
/// How image and speech flows hand back binary results through Langflow's text output: a data URI
/// (<c>data:image/png;base64,…</c>), bare base64, or (images only) an http(s) address.
/// </summary>
public static class FlowMedia
{
    /// <summary>The bytes of a data URI or bare base64 answer; null when the answer is neither.</summary>
    public static byte[]? Bytes(string answer)
    {
        var text = answer.Trim();
        if (text.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var comma = text.IndexOf(',', StringComparison.Ordinal);
            if (comma < 0 || !text[..comma].EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }

            text = text[(comma + 1)..];
        }

        if (text.Length == 0)
        {
            return null;
        }

        var buffer = new byte[text.Length * 3 / 4 + 3];
        return Convert.TryFromBase64String(text, buffer, out var written) ? buffer[..written] : null;
    }

    /// <summary>An absolute http(s) address answer, or null.</summary>
    public static Uri? Address(string answer) =>
        Uri.TryCreate(answer.Trim(), UriKind.Absolute, out var uri) && uri.Scheme is "https" or "http" ? uri : null;
}
