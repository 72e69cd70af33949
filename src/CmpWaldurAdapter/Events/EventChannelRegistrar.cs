using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;

namespace CmpWaldurAdapter.Events;

/// <summary>A RabbitMQ queue Waldur created for one offering and object type, and how to log in to it.</summary>
public sealed record EventQueueBinding(Guid OfferingUuid, string ObjectType, Guid SubscriptionUuid, string QueueName, string VirtualHost);

/// <summary>
/// Sets up Waldur's event channel through its API, as the site agent does: an agent identity per
/// offering, an event subscription per object type, then the queue. All three calls are idempotent, so
/// registering again (after Waldur dropped a subscription or its queue) gives back what still exists and
/// makes what does not.
/// </summary>
public sealed class EventChannelRegistrar(IWaldurApi waldur, TimeProvider clock) : IDisposable
{
    public static readonly IReadOnlyList<ObservableObjectTypeEnum> ObjectTypes = [ObservableObjectTypeEnum.Order, ObservableObjectTypeEnum.Resource];

    // One registration at a time: two queues of an offering registering at once would both create its identity.
    private readonly SemaphoreSlim _registering = new(1, 1);

    public void Dispose() => _registering.Dispose();

    public static string IdentityName(Guid offeringUuid) => $"cmp-waldur-adapter-{offeringUuid}";

    public async Task<EventQueueBinding> RegisterAsync(OfferingBinding offering, ObservableObjectTypeEnum objectType, CancellationToken cancellationToken)
    {
        await _registering.WaitAsync(cancellationToken);
        try
        {
            var identity = await EnsureIdentityAsync(offering.Uuid, cancellationToken);
            var subscription = await waldur.RegisterEventSubscriptionAsync(identity.Uuid, new AgentEventSubscriptionCreateRequest
            {
                Observable_object_type = objectType,
                Description = $"CmpWaldurAdapter {WaldurEnums.ToWire(objectType)} events for offering {offering.Slug}",
            }, cancellationToken);
            var queue = await waldur.CreateQueueAsync(subscription.Uuid, new EventSubscriptionQueueCreateRequest
            {
                Offering_uuid = offering.Uuid,
                Object_type = objectType,
            }, cancellationToken);
            var vhost = string.IsNullOrEmpty(queue.Vhost) ? subscription.User_uuid.ToString("N") : queue.Vhost;
            return new EventQueueBinding(offering.Uuid, WaldurEnums.ToWire(objectType), subscription.Uuid, queue.Queue_name, vhost);
        }
        finally
        {
            _registering.Release();
        }
    }

    private async Task<AgentIdentity> EnsureIdentityAsync(Guid offeringUuid, CancellationToken cancellationToken)
    {
        var name = IdentityName(offeringUuid);
        var existing = await waldur.ListAgentIdentitiesAsync(offeringUuid.ToString(), name, cancellationToken);
        var identity = existing.FirstOrDefault(i => i.Name == name);
        if (identity is not null)
        {
            return identity;
        }

        return await waldur.CreateAgentIdentityAsync(new AgentIdentityRequest
        {
            Name = name,
            Offering = offeringUuid,
            Version = typeof(EventChannelRegistrar).Assembly.GetName().Version?.ToString(3),
            Last_restarted = clock.GetUtcNow(),
        }, cancellationToken);
    }
}
