using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

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

    /// <summary>
    /// As <see cref="EnsureAsync"/>, written at once (in the caller's transaction): a row inserted meanwhile by another
    /// process (another order of the organization, perhaps on another replica) leaves the insert doing nothing, rather
    /// than failing with a unique violation EF Core would log as an error, and is named if it has no name.
    /// </summary>
    public static async Task InsertOrNameAsync(AdapterDbContext db, Guid customerId, string? waldurName, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var name = ColumnText.Clip(waldurName, Customer.MaxNameLength);
        if (await db.Database.ExecuteSqlAsync($"""
            INSERT INTO customers (id, name, created_at, updated_at)
            VALUES ({StoredValues.Uuid(db, customerId)}, {name}, {StoredValues.Instant(db, now)}, {StoredValues.Instant(db, now)})
            ON CONFLICT DO NOTHING
            """, cancellationToken) == 0)
        {
            await NameIfNamelessAsync(db, customerId, waldurName, now, cancellationToken);
        }
    }

    /// <summary>The organizations recorded without a name (a credit grant before their first order, or older rows).</summary>
    public static async Task<HashSet<Guid>> NamelessAsync(AdapterDbContext db, CancellationToken cancellationToken) =>
        [.. await db.Customers.AsNoTracking().Where(c => c.Name == string.Empty).Select(c => c.Id).ToListAsync(cancellationToken)];

    /// <summary>
    /// Gives a nameless organization Waldur's name (clipped to its column), at once; a name it has by now (an order or a
    /// move may have named it since the caller looked) is kept. Returns whether it was named.
    /// </summary>
    public static async Task<bool> NameIfNamelessAsync(AdapterDbContext db, Guid customerId, string? waldurName, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var name = ColumnText.Clip(waldurName, Customer.MaxNameLength);
        return name.Length > 0 && await db.Customers.Where(c => c.Id == customerId && c.Name == string.Empty)
            .ExecuteUpdateAsync(set => set.SetProperty(c => c.Name, name).SetProperty(c => c.UpdatedAt, now), cancellationToken) > 0;
    }
}
