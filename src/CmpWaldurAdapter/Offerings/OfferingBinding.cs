namespace CmpWaldurAdapter.Offerings;

/// <summary>
/// A Waldur offering this adapter serves (configuration section <c>Offerings</c>, a list). Orders for
/// any other offering are left alone.
/// </summary>
public sealed class OfferingBinding
{
    /// <summary>The Waldur offering UUID.</summary>
    public Guid Uuid { get; set; }

    /// <summary>The catalogue entry it was registered from (e.g. <c>customer-support-agent</c>).</summary>
    public string Slug { get; set; } = string.Empty;
}
