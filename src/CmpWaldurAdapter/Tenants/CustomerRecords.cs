using CmpWaldurAdapter.Persistence;

namespace CmpWaldurAdapter.Tenants;

/// <summary>Records a buyer organization where the adapter first meets it: an order, a resource sync, a credit grant.</summary>
public static class CustomerRecords
{
    /// <summary>
    /// Stages in <paramref name="db"/> the organization's row if it is missing, or Waldur's name (clipped to its column)
    /// if the row has none: a credit grant to an organization not seen yet records it without a name. Saves nothing:
    /// the caller saves it with its own changes, under its own transaction, and handles a concurrent insert of the row
    /// (a unique violation) its own way. A null or empty name adds a nameless row, and leaves a known row as it is.
    /// </summary>
    public static async Task EnsureAsync(AdapterDbContext db, Guid customerId, string? waldurName, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var name = ColumnText.Clip(waldurName, Customer.MaxNameLength);
        var known = await db.Customers.FindAsync([customerId], cancellationToken);
        if (known is null)
        {
            db.Customers.Add(new Customer { Id = customerId, Name = name, CreatedAt = now, UpdatedAt = now });
        }
        else if (known.Name.Length == 0 && name.Length > 0)
        {
            known.Name = name;
            known.UpdatedAt = now;
        }
    }
}
