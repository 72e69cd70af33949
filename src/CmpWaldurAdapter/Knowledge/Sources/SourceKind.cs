namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>Where a buyer's document comes from (uploads are not a remote source).</summary>
public enum SourceKind
{
    Url,
    Notion,
    Confluence,
}
