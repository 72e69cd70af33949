namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>What a re-sync must do to the dataset.</summary>
/// <param name="Add">Listed now, not stored before.</param>
/// <param name="Replace">Stored with another version: delete the old document and upload this one.</param>
/// <param name="Delete">External ids stored before and no longer listed.</param>
/// <param name="Unchanged">Listed with the stored version: nothing to do.</param>
public sealed record SourceSyncPlan(
    IReadOnlyList<SourceDocument> Add,
    IReadOnlyList<SourceDocument> Replace,
    IReadOnlyList<string> Delete,
    IReadOnlyList<SourceDocument> Unchanged)
{
    public bool IsEmpty => Add.Count == 0 && Replace.Count == 0 && Delete.Count == 0;
}

/// <summary>Compares stored versions with a fresh listing, so a re-sync touches only what changed.</summary>
public static class SourceSync
{
    /// <param name="stored">External id → version, as recorded at the last sync.</param>
    /// <param name="listed">The documents a source lists now; a repeated external id counts once (the first).</param>
    public static SourceSyncPlan Plan(IReadOnlyDictionary<string, string> stored, IEnumerable<SourceDocument> listed)
    {
        ArgumentNullException.ThrowIfNull(stored);
        ArgumentNullException.ThrowIfNull(listed);

        var add = new List<SourceDocument>();
        var replace = new List<SourceDocument>();
        var unchanged = new List<SourceDocument>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var document in listed)
        {
            if (!seen.Add(document.ExternalId))
            {
                continue;
            }

            if (!stored.TryGetValue(document.ExternalId, out var version))
            {
                add.Add(document);
            }
            else if (string.Equals(version, document.Version, StringComparison.Ordinal) && document.Version.Length > 0)
            {
                unchanged.Add(document);
            }
            else
            {
                // An empty version cannot prove "unchanged", so it is always replaced.
                replace.Add(document);
            }
        }

        var delete = stored.Keys.Where(id => !seen.Contains(id)).Order(StringComparer.Ordinal).ToList();
        return new SourceSyncPlan(add, replace, delete, unchanged);
    }
}
