namespace CmpWaldurAdapter.Core.Orders;

/// <summary>Waldur order types (schema <c>RequestTypes</c>).</summary>
public enum OrderType
{
    Create,
    Update,
    Terminate,
    Restore,
}

/// <summary>Waldur order states (schema <c>OrderState</c>), named as Waldur spells them on the wire.</summary>
public static class WaldurOrderStates
{
    public const string PendingConsumer = "pending-consumer";
    public const string PendingProvider = "pending-provider";
    public const string PendingProject = "pending-project";
    public const string PendingStartDate = "pending-start-date";
    public const string Executing = "executing";
    public const string Done = "done";
    public const string Erred = "erred";
    public const string Canceled = "canceled";
    public const string Rejected = "rejected";

    /// <summary>States in which the provider has work to do; every other state is someone else's turn or final.</summary>
    public static bool IsActionable(string? state) => state is PendingProvider or Executing;

    public static bool IsFinal(string? state) => state is Done or Erred or Canceled or Rejected;
}
