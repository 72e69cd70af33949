namespace CmpWaldurAdapter.Tenants;

/// <summary>A buyer organization (Waldur customer). Its credit balance is shared by all its projects and subscriptions.</summary>
public sealed class Customer
{
    /// <summary>The Waldur customer UUID.</summary>
    public Guid Id { get; set; }

    public string Name { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}
