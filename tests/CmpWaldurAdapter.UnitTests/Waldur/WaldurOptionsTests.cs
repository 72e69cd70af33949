using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Waldur;

namespace CmpWaldurAdapter.UnitTests.Waldur;

public sealed class WaldurOptionsTests
{
    [Theory]
    [InlineData(1, true)]
    [InlineData(300, true)]
    [InlineData(301, false)] // Waldur would answer 300 and the list would end there
    [InlineData(0, false)]
    public void Page_size_stays_within_what_waldur_serves(int pageSize, bool valid)
    {
        var options = new WaldurOptions { PageSize = pageSize };
        var context = new ValidationContext(options) { MemberName = nameof(WaldurOptions.PageSize) };

        Assert.Equal(valid, Validator.TryValidateProperty(options.PageSize, context, []));
    }
}
