namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// One document read from a remote source, ready to upload: <see cref="Content"/> is text/markdown
/// (converted from Notion blocks or HTML) or the original bytes for other allowed types.
/// </summary>
/// <param name="ExternalId">Stable identity within the buyer's sources (e.g. <c>notion:{page id}</c>); the key for re-sync.</param>
/// <param name="Title">Human-readable title.</param>
/// <param name="FileName">A safe file name with an extension that matches <paramref name="ContentType"/>.</param>
/// <param name="ContentType">Media type of <paramref name="Content"/>, without parameters.</param>
/// <param name="Content">The bytes to upload (UTF-8 for text types).</param>
/// <param name="Version">Changes whenever the source changes: Notion <c>last_edited_time</c>, Confluence <c>version.number</c>, URL ETag or SHA-256.</param>
/// <param name="UpdatedAt">When the source says it last changed, where it says so.</param>
/// <param name="SourceUrl">Where a person can open the original.</param>
public sealed record SourceDocument(
    string ExternalId,
    string Title,
    string FileName,
    string ContentType,
    byte[] Content,
    string Version,
    DateTimeOffset? UpdatedAt,
    Uri? SourceUrl);
