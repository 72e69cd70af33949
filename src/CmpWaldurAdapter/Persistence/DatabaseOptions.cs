using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Persistence;

/// <summary>Where the adapter keeps its state (configuration section <c>Database</c>).</summary>
public sealed class DatabaseOptions
{
    public const string SectionName = "Database";

    /// <summary><c>Sqlite</c> (embedded default) or <c>Postgres</c> (production, several replicas).</summary>
    public DatabaseProvider Provider { get; set; } = DatabaseProvider.Sqlite;

    /// <summary>ADO.NET connection string. A secret when it carries a password.</summary>
    public string ConnectionString { get; set; } = "Data Source=cmp-adapter.db";

    /// <summary>How often rows nothing needs any more (expired Idempotency-Key answers, one-time key links) are deleted.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromMinutes(15);
}

public enum DatabaseProvider
{
    Sqlite,
    Postgres,
}
