namespace CmpWaldurAdapter.Core.Subscriptions;

/// <summary>Lifecycle of a subscription on the adapter's side.</summary>
public enum SubscriptionState
{
    /// <summary>A Create order is provisioning the tenant.</summary>
    Provisioning,

    /// <summary>Provisioned and usable (unless paused or downscaled by Waldur).</summary>
    Active,

    /// <summary>A Terminate order is removing the tenant.</summary>
    Terminating,

    /// <summary>
    /// Everything upstream was removed; or Waldur terminated the resource without a Terminate order, and what is left
    /// upstream is an orphan for reconcile.
    /// </summary>
    Terminated,

    /// <summary>Provisioning failed permanently; the order was marked erred.</summary>
    Erred,
}
