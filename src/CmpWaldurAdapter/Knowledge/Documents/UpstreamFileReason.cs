using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Ragflow.Api;

namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>
/// What a buyer may read of RAGFlow refusing an upload: only the reasons it gives for the files themselves (code 500
/// under HTTP 200, one line per file: "a.txt: This type of file has not been supported yet!"), with every 32-hex-digit id
/// (dataset, document, tenant) taken out, and nothing at all when any of it reads like a Python exception. Anything else
/// RAGFlow answers (code 100 is <c>repr(e)</c>, a missing dataset names its id) is for the log only: no buyer ever
/// sees a dataset id (architecture §4).
/// </summary>
internal static partial class UpstreamFileReason
{
    /// <summary>RAGFlow's <c>RetCode.SERVER_ERROR</c>: the upload route's answer when files were refused, with their reasons.</summary>
    private const int FilesRefused = 500;

    /// <summary>The cleaned per-file reasons (at most <paramref name="max"/> characters), or null when there are none to show.</summary>
    public static string? Of(RagflowException? ragflow, int max = 300)
    {
        if (ragflow is not { Code: FilesRefused, Status: HttpStatusCode.OK })
        {
            return null;
        }

        var lines = ragflow.UpstreamMessage.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return Shown(string.Join("; ", lines), max);
    }

    /// <summary>
    /// RAGFlow's words about a file (a refused upload's reasons, a failed parse's last progress line) as a buyer may read
    /// them: ids taken out, or null when any of it reads like an exception (not every line of a traceback can be recognised).
    /// </summary>
    public static string? Shown(string text, int max)
    {
        if (string.IsNullOrWhiteSpace(text) || ExceptionLike().IsMatch(text))
        {
            return null;
        }

        return KnowledgeBase.Shorten(HexId().Replace(text, "…"), max);
    }

    // RAGFlow's ids are uuid1().hex; a dataset's name carries the resource's uuid as hex too.
    [GeneratedRegex("(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])", RegexOptions.CultureInvariant)]
    private static partial Regex HexId();

    // repr(e) ("KeyError('kb_id')", "<minio.error.S3Error object at 0x…>"), str(e) after its type ("KeyError: …"), tracebacks.
    [GeneratedRegex(@"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\s*[(:]|Traceback \(most recent call last\)|<[\w.]+ object at 0x|<class '|\bFile ""[^""]*"", line \d+", RegexOptions.CultureInvariant)]
    private static partial Regex ExceptionLike();
}
