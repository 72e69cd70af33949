namespace CmpWaldurAdapter.Hosting;

/// <summary>Names this process among the replicas that share a database, for leases and logs.</summary>
public sealed class AdapterInstance
{
    public string Id { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
}
