using System.Text.Json;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>The subscription's webhook outbox (escalations and spend alerts share it).</summary>
public static class HandoffOutbox
{
    /// <summary>
    /// Adds the event to <paramref name="db"/> as a delivery due now when the subscription has a webhook, so it is saved
    /// in the caller's transaction with what it announces; false (nothing added) when no webhook is set.
    /// </summary>
    public static async Task<bool> EnqueueAsync<TEvent>(AdapterDbContext db, Guid subscriptionId, Guid id, Guid? conversationId, Func<TEvent> body,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await db.HandoffWebhooks.AsNoTracking().AnyAsync(w => w.SubscriptionId == subscriptionId, cancellationToken))
        {
            return false;
        }

        db.HandoffDeliveries.Add(new HandoffDelivery
        {
            Id = id,
            SubscriptionId = subscriptionId,
            ConversationId = conversationId,
            Payload = JsonSerializer.Serialize(body(), ApiJson.Options),
            NextAttemptAt = now,
            CreatedAt = now,
        });
        return true;
    }
}
