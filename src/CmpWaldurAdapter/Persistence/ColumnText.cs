namespace CmpWaldurAdapter.Persistence;

/// <summary>Text the adapter does not choose (names copied from Waldur, error messages), cut to fit its column.</summary>
public static class ColumnText
{
    /// <summary>At most <paramref name="maxLength"/> characters, never splitting a surrogate pair; null becomes empty.</summary>
    public static string Clip(string? text, int maxLength)
    {
        if (text is null || text.Length <= maxLength)
        {
            return text ?? string.Empty;
        }

        return text[..(char.IsHighSurrogate(text[maxLength - 1]) ? maxLength - 1 : maxLength)];
    }
}
