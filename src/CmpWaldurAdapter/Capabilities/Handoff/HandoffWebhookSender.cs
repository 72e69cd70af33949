using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>
/// Delivers the outbox of the subscription's webhook: escalations and spend alerts, each a ready JSON event (the
/// sender reads only its subscription and payload, never a conversation). Each due delivery is first claimed (its
/// next attempt moved past the timeout) so two replicas never send it at the same time; a 2xx answer marks it
/// delivered, anything else schedules a retry with doubling delay. Rows are never dropped: an undelivered event stays due.
/// </summary>
public sealed class HandoffWebhookSender(
    IDbContextFactory<AdapterDbContext> dbs,
    IHttpClientFactory http,
    UpstreamCredentials credentials,
    IOptions<HandoffOptions> options,
    TimeProvider clock,
    ILogger<HandoffWebhookSender> logger)
{
    public const string HttpClientName = "handoff-webhooks";

    public const string SignatureHeader = "X-Cmp-Signature";

    /// <summary><c>t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256 of "t.body" with the secret&gt;</c>, as Stripe signs its webhooks.</summary>
    public static string Sign(string secret, long timestamp, string body)
    {
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp.ToString(CultureInfo.InvariantCulture)}.{body}"));
        return $"t={timestamp.ToString(CultureInfo.InvariantCulture)},v1={Convert.ToHexStringLower(mac)}";
    }

    /// <summary>Sends every due delivery once; returns how many were accepted.</summary>
    public async Task<int> DeliverDueAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var due = await db.HandoffDeliveries.AsNoTracking().Where(d => d.DeliveredAt == null && d.NextAttemptAt <= now)
            .OrderBy(d => d.NextAttemptAt).Take(50).ToListAsync(cancellationToken);
        var delivered = 0;
        foreach (var delivery in due)
        {
            // From the claim itself: sends before it in this batch may have taken the time, and a claim already run out
            // would let another replica send the same event again.
            var lease = clock.GetUtcNow() + options.Value.DeliveryTimeout + TimeSpan.FromSeconds(5);
            var claimed = await db.HandoffDeliveries.Where(d => d.Id == delivery.Id && d.DeliveredAt == null && d.NextAttemptAt == delivery.NextAttemptAt)
                .ExecuteUpdateAsync(set => set.SetProperty(d => d.NextAttemptAt, lease), cancellationToken);
            if (claimed == 0)
            {
                continue; // another replica has it
            }

            var error = await SendAsync(db, delivery, cancellationToken);
            var attempts = delivery.Attempts + 1;
            var after = clock.GetUtcNow();
            if (error is null)
            {
                delivered++;
                await db.HandoffDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(set => set
                    .SetProperty(d => d.DeliveredAt, after).SetProperty(d => d.Attempts, attempts).SetProperty(d => d.LastError, (string?)null), CancellationToken.None);
            }
            else
            {
                var delay = RetryDelay(attempts);
                logger.LogWarning("Webhook delivery {DeliveryId} failed (attempt {Attempt}): {Reason}; next try in {Delay}", delivery.Id, attempts, error, delay);
                await db.HandoffDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(set => set
                    .SetProperty(d => d.Attempts, attempts).SetProperty(d => d.LastError, error).SetProperty(d => d.NextAttemptAt, after + delay), CancellationToken.None);
            }
        }

        return delivered;
    }

    internal TimeSpan RetryDelay(int attempts)
    {
        var first = options.Value.FirstRetryDelay;
        var factor = Math.Pow(2, Math.Min(attempts - 1, 20));
        return TimeSpan.FromTicks((long)Math.Min(first.Ticks * factor, options.Value.MaxRetryDelay.Ticks));
    }

    /// <summary>One attempt; null when the receiver accepted it, else a reason to log and store.</summary>
    private async Task<string?> SendAsync(AdapterDbContext db, HandoffDelivery delivery, CancellationToken cancellationToken)
    {
        var webhook = await db.HandoffWebhooks.AsNoTracking().SingleOrDefaultAsync(w => w.SubscriptionId == delivery.SubscriptionId, cancellationToken);
        if (webhook is null)
        {
            return "no webhook is configured";
        }

        var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, webhook.Url)
        {
            Content = new StringContent(delivery.Payload, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add(SignatureHeader, Sign(credentials.Unprotect(webhook.SecretCipher), timestamp, delivery.Payload));
        request.Headers.Add("X-Cmp-Delivery", delivery.Id.ToString());
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.DeliveryTimeout);
        try
        {
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, timeout.Token);
            return response.IsSuccessStatusCode ? null : $"the receiver answered {(int)response.StatusCode}";
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return exception switch
            {
                OperationCanceledException => "the receiver did not answer in time",
                // A host saved as public that now resolves inward (or a webhook saved before addresses were checked).
                { InnerException: Knowledge.Sources.SourceRejectedException } => "the webhook address points to a non-public address",
                _ => "the receiver could not be reached",
            };
        }
    }
}

/// <summary>The Quartz job that runs <see cref="HandoffWebhookSender.DeliverDueAsync"/>.</summary>
[DisallowConcurrentExecution]
public sealed class DeliverHandoffWebhooksJob(HandoffWebhookSender sender) : IJob
{
    public static readonly JobKey Key = new("deliver-handoff-webhooks", "handoff");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await sender.DeliverDueAsync(cancellationToken);
}
