using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Configuration;

/// <summary>
/// An absolute address with one of the given schemes (http or https when none are given). Configuration binds
/// "waldur.example.org" to a relative <see cref="Uri"/> without complaint, which would fail only at the first call.
/// Compiled into each assembly that binds addresses (a linked file).
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class AbsoluteUriAttribute(params string[] schemes) : ValidationAttribute
{
    public IReadOnlyList<string> Schemes { get; } = schemes.Length == 0 ? ["http", "https"] : schemes;

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        value is null || (value is Uri { IsAbsoluteUri: true } uri && Schemes.Contains(uri.Scheme, StringComparer.OrdinalIgnoreCase))
            ? ValidationResult.Success
            : new ValidationResult(
                $"{validationContext.MemberName} must be an absolute {string.Join(" or ", Schemes)} address, not '{value}'.",
                validationContext.MemberName is { } member ? [member] : null);
}
