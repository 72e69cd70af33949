using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>
/// Human handoff for subscriptions whose configuration sets <c>escalate_after</c>: each answer is recorded in
/// the conversation's transcript; at the N-th unanswered question, or when the visitor asks for a person, the
/// conversation is escalated once and the webhook (if configured) is put in the outbox in the same transaction.
/// Escalating charges nothing.
/// </summary>
public sealed class HandoffService(
    IDbContextFactory<AdapterDbContext> dbs,
    UpstreamCredentials credentials,
    IOptions<HandoffOptions> options,
    IOptions<WebOptions> web,
    TimeProvider clock,
    ILogger<HandoffService> logger)
{
    public const string HandoffHeader = "X-Handoff";

    /// <summary>The prefix of an escalated conversation's id in the API (the row's id follows).</summary>
    public const string EscalationIdPrefix = "esc_";

    public const string VisitorMessage = "I am handing this conversation to a person, who will follow up with you.";

    /// <summary>
    /// The chat pipeline's hook after an answer (API, console, widget): records it and returns the handoff notice once
    /// the conversation is escalated, else null. The answer was charged already, so a failure here is logged and
    /// never fails it. <paramref name="nothingRetrieved"/>: the subscription's knowledge base was searched for the
    /// question and returned no passage. <paramref name="earlier"/>: the turns before the question that the client sent
    /// itself (a client keeping its own history), taken in when this is the first the record hears of the conversation.
    /// </summary>
    public async Task<HandoffNotice?> AfterAnswerAsync(Subscription subscription, string conversation, string question, string answer, bool nothingRetrieved,
        IReadOnlyList<(string Role, string Content)>? earlier = null)
    {
        try
        {
            if (EscalateAfter(subscription.Configuration) is not { } threshold)
            {
                return null;
            }

            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return await RecordAsync(subscription, conversation, question, answer, nothingRetrieved, earlier ?? [], threshold, CancellationToken.None);
                }
                catch (DbUpdateException exception) when (attempt < 3 && (exception is DbUpdateConcurrencyException || DbErrors.IsUniqueViolation(exception)))
                {
                    // Another message of the same conversation got there first: read it again.
                }
            }
        }
        catch (Exception exception) when (exception is DbUpdateException or InvalidOperationException or JsonException)
        {
            logger.LogError(exception, "Could not record the answer for handoff of subscription {SubscriptionId}", subscription.Id);
            return null;
        }
    }

    private async Task<HandoffNotice?> RecordAsync(Subscription subscription, string conversation, string question, string answer, bool nothingRetrieved,
        IReadOnlyList<(string Role, string Content)> earlier, int threshold, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var row = await db.HandoffConversations.SingleOrDefaultAsync(c => c.SubscriptionId == subscription.Id && c.Conversation == conversation, cancellationToken);
        var transcript = new List<TranscriptTurn>();
        if (row is null)
        {
            row = new HandoffConversation { Id = Guid.CreateVersion7(now), SubscriptionId = subscription.Id, Conversation = conversation, CreatedAt = now };
            db.HandoffConversations.Add(row);
            // Known from its second message on (its first came without any earlier turn to know it by), or again after
            // the purge: the earlier answers the client sent back count as well, and the person taking over reads them.
            transcript.AddRange(earlier.Select(t => new TranscriptTurn(t.Role, t.Content, now)));
            row.Unanswered = earlier.Count(t => t.Role == "assistant" && HandoffRules.IsUnanswered(t.Content));
        }
        else
        {
            transcript = JsonSerializer.Deserialize<List<TranscriptTurn>>(row.Transcript, ApiJson.Options) ?? [];
        }

        transcript.Add(new TranscriptTurn("user", question, now));
        transcript.Add(new TranscriptTurn("assistant", answer, now));
        if (transcript.Count > options.Value.TranscriptTurns)
        {
            transcript.RemoveRange(0, transcript.Count - options.Value.TranscriptTurns);
        }

        row.Transcript = JsonSerializer.Serialize(transcript, ApiJson.Options);
        row.UpdatedAt = now;
        if (row.EscalatedAt is null)
        {
            if (HandoffRules.IsUnanswered(answer, nothingRetrieved))
            {
                row.Unanswered++;
            }

            var reason = HandoffRules.AsksForHuman(question) ? "visitor_request" : row.Unanswered >= threshold ? "unanswered_questions" : null;
            if (reason is not null)
            {
                row.EscalatedAt = now;
                row.EscalationReason = reason;
                var id = Guid.CreateVersion7(now);
                await HandoffOutbox.EnqueueAsync(db, subscription.Id, id, row.Id,
                    () => new EscalationEvent(id, "conversation.escalated", subscription.ResourceUuid, conversation, reason, row.Unanswered, now, Link(subscription, row), transcript),
                    now, cancellationToken);

                logger.LogInformation("Conversation of subscription {SubscriptionId} escalated to a person ({Reason})", subscription.Id, reason);
            }
        }

        await db.SaveChangesAsync(cancellationToken);
        return row.EscalatedAt is { } escalated ? new HandoffNotice("escalated", row.EscalationReason!, VisitorMessage, escalated) : null;
    }

    /// <summary>Sets the webhook's address; a new webhook gets a secret, returned only in this answer.</summary>
    public async Task<WebhookSettings> SetWebhookAsync(Guid subscriptionId, Uri url, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var webhook = await db.HandoffWebhooks.SingleOrDefaultAsync(w => w.SubscriptionId == subscriptionId, cancellationToken);
        string? secret = null;
        if (webhook is null)
        {
            secret = NewSecret();
            webhook = new HandoffWebhook { SubscriptionId = subscriptionId, SecretCipher = credentials.Protect(secret), CreatedAt = now };
            db.HandoffWebhooks.Add(webhook);
        }

        webhook.Url = url.ToString();
        webhook.UpdatedAt = now;
        await db.SaveChangesAsync(cancellationToken);
        return new WebhookSettings(webhook.Url, secret, now);
    }

    /// <summary>A new signing secret (the old one stops working at once); null when no webhook is set.</summary>
    public async Task<WebhookSettings?> RotateSecretAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var webhook = await db.HandoffWebhooks.SingleOrDefaultAsync(w => w.SubscriptionId == subscriptionId, cancellationToken);
        if (webhook is null)
        {
            return null;
        }

        var secret = NewSecret();
        webhook.SecretCipher = credentials.Protect(secret);
        webhook.UpdatedAt = now;
        await db.SaveChangesAsync(cancellationToken);
        return new WebhookSettings(webhook.Url, secret, now);
    }

    public async Task<WebhookSettings?> WebhookAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.HandoffWebhooks.AsNoTracking().Where(w => w.SubscriptionId == subscriptionId)
            .Select(w => new WebhookSettings(w.Url, null, w.UpdatedAt)).SingleOrDefaultAsync(cancellationToken);
    }

    /// <summary>
    /// A page of the subscription's escalated conversations, newest first (what the API and the console list),
    /// ties in time ordered by id so that paging sees each once; null when <paramref name="from"/> is not one of them.
    /// </summary>
    public async Task<ListPage<EscalatedConversation>?> EscalatedAsync(Guid subscriptionId, int limit, PageCursor? from, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var page = await NewestFirstPages.ReadAsync(db.HandoffConversations.AsNoTracking().Where(c => c.SubscriptionId == subscriptionId && c.EscalatedAt != null),
            c => c.EscalatedAt, c => c.Id, limit, from, cancellationToken);
        if (page is null)
        {
            return null;
        }

        var rows = page.Data;
        var ids = rows.Select(r => (Guid?)r.Id).ToList();
        var deliveries = await db.HandoffDeliveries.AsNoTracking().Where(d => ids.Contains(d.ConversationId))
            .Select(d => new { d.ConversationId, Delivered = d.DeliveredAt != null }).ToListAsync(cancellationToken);
        return new ListPage<EscalatedConversation>(rows.Select(r => new EscalatedConversation(
            ListQuery.IdOf(EscalationIdPrefix, r.Id),
            r.Conversation,
            r.EscalationReason!,
            r.Unanswered,
            r.EscalatedAt!.Value,
            deliveries.FirstOrDefault(d => d.ConversationId == r.Id)?.Delivered,
            JsonSerializer.Deserialize<List<TranscriptTurn>>(r.Transcript, ApiJson.Options) ?? [])).ToList(), page.HasMore);
    }

    /// <summary>The buyer's setting: an integer (or its text) of at least 1; absent or invalid means no handoff.</summary>
    internal static int? EscalateAfter(string configuration)
    {
        var value = (JsonNode.Parse(configuration) as JsonObject)?["escalate_after"];
        var number = value?.GetValueKind() switch
        {
            JsonValueKind.Number when value.AsValue().TryGetValue<int>(out var n) => n,
            JsonValueKind.String when int.TryParse(value.GetValue<string>(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) => n,
            _ => (int?)null,
        };
        return number is >= 1 ? number : null;
    }

    /// <summary>
    /// The console's Activity tab of the subscription at the page that starts with the conversation (however many
    /// escalations came after it), anchored at its row. The console shows only the subscription its session names;
    /// the <c>resource</c> parameter lets it refuse a link meant for another.
    /// </summary>
    private string Link(Subscription subscription, HandoffConversation row) =>
        web.Value.ConsoleLink("activity", subscription.ResourceUuid, $"&escalation={ListQuery.IdOf(EscalationIdPrefix, row.Id)}#{AnchorOf(row.Conversation)}");

    /// <summary>
    /// The HTML id of a conversation's row in the console: letters, digits and '-' are kept, every other character
    /// becomes '_' and its UTF-16 code in hex, so the id is unique per conversation and safe in HTML, URLs and CSS.
    /// </summary>
    public static string AnchorOf(string conversation)
    {
        var anchor = new System.Text.StringBuilder("conversation-", 13 + conversation.Length);
        foreach (var c in conversation)
        {
            if (char.IsAsciiLetterOrDigit(c) || c == '-')
            {
                anchor.Append(c);
            }
            else
            {
                anchor.Append('_').Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
            }
        }

        return anchor.ToString();
    }

    private static string NewSecret() => "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
