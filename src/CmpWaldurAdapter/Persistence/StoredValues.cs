using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Persistence;

/// <summary>
/// Values for hand-written SQL (an INSERT ... ON CONFLICT DO NOTHING, which EF Core cannot express), as the model stores
/// them: on SQLite GUIDs as upper-case text and instants as UTC ticks (the model's converters), on PostgreSQL as they are.
/// </summary>
public static class StoredValues
{
    public static object Uuid(AdapterDbContext db, Guid value) => db.Database.IsSqlite() ? value.ToString("D").ToUpperInvariant() : value;

    public static object? Uuid(AdapterDbContext db, Guid? value) => value is { } id ? Uuid(db, id) : null;

    public static object Instant(AdapterDbContext db, DateTimeOffset value) => db.Database.IsSqlite() ? value.UtcTicks : value;

    /// <summary>SQLite keeps dates as text.</summary>
    public static object Day(AdapterDbContext db, DateOnly value) => db.Database.IsSqlite() ? value.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) : value;
}
