using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;

namespace CmpWaldurAdapter.Events;

/// <summary>A RabbitMQ queue Waldur created for one offering and object type, and how to log in to it.</summary>
public sealed record EventQueueBinding(Guid OfferingUuid, string ObjectType, Guid SubscriptionUuid, string QueueName, string VirtualHost);

/// <summary>
/// Sets up Waldur's event channel through its API, as the site agent does: an agent identity per
/// offering, an event subscription per object type, then the queue. All three calls are idempotent.
/// </summary>
public sealed class EventChannelRegistrar(IWaldurApi waldur, ServedOfferings catalog, TimeProvider clock)
{
    public static readonly IReadOnlyList<ObservableObjectTypeEnum> ObjectTypes = [ObservableObjectTypeEnum.Order, ObservableObjectTypeEnum.Resource];

    public static string IdentityName(Guid offeringUuid) => $"cmp-waldur-adapter-{offeringUuid}";

    public async Task<IReadOnlyList<EventQueueBinding>> RegisterAsync(CancellationToken cancellationToken)
    {
        var queues = new List<EventQueueBinding>();
        foreach (var offering in catalog.Offerings)
        {
            var identity = await EnsureIdentityAsync(offering.Uuid, cancellationToken);
            foreach (var objectType in ObjectTypes)
            {
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
                queues.Add(new EventQueueBinding(offering.Uuid, WaldurEnums.ToWire(objectType), subscription.Uuid, queue.Queue_name, vhost));
            }
        }

        return queues;
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
