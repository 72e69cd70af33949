using System.Collections.Concurrent;
using CmpWaldurAdapter.Core.Forms;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Offerings;

/// <summary>
/// The offerings this adapter serves and their order forms. Forms come from Waldur itself (the
/// offering's <c>options</c> and <c>resource_options</c>), so validation matches what HomePort showed
/// the buyer; they are cached briefly because every order needs them.
/// </summary>
public sealed class ServedOfferings(IWaldurApi waldur, IOptionsMonitor<List<OfferingBinding>> bindings, TimeProvider clock)
{
    public static readonly TimeSpan FormCacheLifetime = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<Guid, CachedForms> _forms = new();

    public IReadOnlyList<OfferingBinding> Offerings => bindings.CurrentValue;

    public bool Serves(Guid? offeringUuid) => offeringUuid is { } uuid && Find(uuid) is not null;

    public OfferingBinding? Find(Guid offeringUuid) => bindings.CurrentValue.FirstOrDefault(o => o.Uuid == offeringUuid);

    public async Task<OfferingForms> GetFormsAsync(Guid offeringUuid, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_forms.TryGetValue(offeringUuid, out var cached) && cached.ExpiresAt > now)
        {
            return cached.Forms;
        }

        var offering = await waldur.GetProviderOfferingAsync(offeringUuid, cancellationToken);
        var forms = new OfferingForms(
            offering.Name ?? offeringUuid.ToString(),
            ToForm(offering.Options),
            ToForm(offering.Resource_options));
        _forms[offeringUuid] = new CachedForms(forms, now + FormCacheLifetime);
        return forms;
    }

    internal static OrderForm ToForm(OfferingOptions? options)
    {
        if (options?.Options is null)
        {
            return OrderForm.Empty;
        }

        var fields = new List<FormField>();
        foreach (var (key, option) in options.Options)
        {
            var wireType = WaldurEnums.ToWire(option.Type);
            if (!FormFieldTypes.TryParse(wireType, out var type))
            {
                // Fields of infrastructure-specific types never appear on our catalogue's forms; accept them as text.
                type = FormFieldType.Text;
            }

            fields.Add(new FormField(key, type, string.IsNullOrWhiteSpace(option.Label) ? key : option.Label, option.Required ?? false,
                option.Choices, option.Min, option.Max, option.Default));
        }

        return new OrderForm(fields);
    }

    private sealed record CachedForms(OfferingForms Forms, DateTimeOffset ExpiresAt);
}

/// <summary>An offering's name and its two forms: the order form and the options buyers may change later.</summary>
public sealed record OfferingForms(string OfferingName, OrderForm OrderForm, OrderForm ResourceOptionsForm);
