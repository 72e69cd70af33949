namespace CmpWaldurAdapter.Tenants;

/// <summary>A buyer organization (Waldur customer). Its credit balance is shared by all its projects and subscriptions.</summary>
public sealed class Customer
{
    /// <summary>Width of <see cref="Name"/>; Waldur allows 150.</summary>
    public const int MaxNameLength = 300;

    /// <summary>The Waldur customer UUID.</summary>
    public Guid Id { get; set; }

    public string Name { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}
